/* The zygote's loop, its fork, and the sandboxed child's hardening, in C.

   Written by hand because no library does it: the same steps as harden.harden() (see there for why
   each one), made as plain system calls. In Python every object a freshly forked child touches costs
   it a copy of that object's page (copy-on-write), and the hardening touched some 150 of them, a third
   of a short sample's page copies; here the child touches its stack and a few static variables. The zygote's
   loop is here for the same reason: whatever the zygote writes between two forks, it copies while the
   last child lives.

   Optional: when this module is not built (no C compiler), the zygote forks with ctypes and the
   child hardens itself in Python, with the same effect.

   configure(...) stores what is the same for every child (the Landlock rules, the descriptors to
   keep, the seccomp filter). serve(requests, replies, child) reads requests from the worker (a 4-byte
   length, then a plan in the layout zygote.hardened_request writes, then the child's own request), and
   for each forks a child of the worker (CLONE_PARENT: the worker must be the children's parent),
   hardens it and calls child(request, failure) in it, failure being None or the OSError of the step
   that failed; the zygote answers with the child's pid (4 bytes, minus the errno when it failed). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_PARENT
#define CLONE_PARENT 0x00008000
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#define RULE_PATH_BENEATH 1
#define MAX_RULES 64
#define MAX_KEEP 64
#define MAX_RLIMITS 8
#define RESULT_FD 3

struct ruleset_attr {
    uint64_t fs, net, scoped;
};

struct path_beneath {
    uint64_t allowed;
    int32_t parent_fd;
} __attribute__((packed));

static struct {
    int landlock; /* 0: no Landlock */
    struct ruleset_attr attr;
    size_t attr_size;
    int n_rules;
    struct path_beneath rules[MAX_RULES];
    uint64_t proc_self_rights, workdir_rights;
    int n_keep;
    int keep[MAX_KEEP]; /* sorted, all above RESULT_FD */
    struct sock_fprog seccomp; /* .len 0: none to load */
    int fork_hooks;            /* run CPython's fork hooks (zygote.needs_fork_hooks) */
} config;

struct plan {
    char paths[3][PATH_MAX]; /* stdout, stderr, result: become descriptors 1, 2, 3 */
    char workdir[PATH_MAX];
    long uid; /* -1: keep ours */
    int n_rlimits;
    long rlimits[MAX_RLIMITS][3]; /* resource, soft, hard */
};

static PyObject *configure(PyObject *self, PyObject *args)
{
    PyObject *attr, *rules, *keep;
    unsigned long long proc_self_rights, workdir_rights;
    Py_buffer bpf = {0};
    int fork_hooks;
    if (!PyArg_ParseTuple(args, "OOKKOy*p", &attr, &rules, &proc_self_rights, &workdir_rights, &keep, &bpf,
                          &fork_hooks))
        return NULL;
    PyMem_RawFree(config.seccomp.filter);
    memset(&config, 0, sizeof config);
    if (attr != Py_None) {
        unsigned long long fs, net, scoped;
        Py_ssize_t size;
        if (!PyArg_ParseTuple(attr, "KKKn", &fs, &net, &scoped, &size) || size <= 0 ||
            size > (Py_ssize_t)sizeof config.attr)
            goto invalid;
        config.landlock = 1;
        config.attr.fs = fs, config.attr.net = net, config.attr.scoped = scoped;
        config.attr_size = (size_t)size;
    }
    Py_ssize_t n = PySequence_Length(rules);
    if (n < 0 || n > MAX_RULES)
        goto invalid;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_GetItem(rules, i);
        int fd;
        unsigned long long allowed;
        int ok = pair != NULL && PyArg_ParseTuple(pair, "iK", &fd, &allowed);
        Py_XDECREF(pair);
        if (!ok)
            goto invalid;
        config.rules[i].parent_fd = fd, config.rules[i].allowed = allowed;
    }
    config.n_rules = (int)n;
    config.proc_self_rights = proc_self_rights, config.workdir_rights = workdir_rights;
    n = PySequence_Length(keep);
    if (n < 0 || n > MAX_KEEP)
        goto invalid;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_GetItem(keep, i);
        long fd = item == NULL ? -1 : PyLong_AsLong(item);
        Py_XDECREF(item);
        if (fd <= RESULT_FD || (i > 0 && fd <= config.keep[i - 1]))
            goto invalid; /* kept descriptors: above the standard ones, sorted */
        config.keep[i] = (int)fd;
    }
    config.n_keep = (int)n;
    if (bpf.len > 0) {
        if (bpf.len % sizeof(struct sock_filter) != 0 || bpf.len / sizeof(struct sock_filter) > BPF_MAXINSNS)
            goto invalid;
        struct sock_filter *filter = PyMem_RawMalloc(bpf.len); /* kept until configured again */
        if (filter == NULL) {
            PyBuffer_Release(&bpf);
            return PyErr_NoMemory();
        }
        memcpy(filter, bpf.buf, bpf.len);
        config.seccomp.filter = filter;
        config.seccomp.len = (unsigned short)(bpf.len / sizeof(struct sock_filter));
    }
    config.fork_hooks = fork_hooks;
    PyBuffer_Release(&bpf);
    Py_RETURN_NONE;
invalid:
    PyBuffer_Release(&bpf);
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "invalid sandbox configuration");
    PyMem_RawFree(config.seccomp.filter);
    memset(&config, 0, sizeof config);
    return NULL;
}

/* Little-endian reads from a request: 0, or -1 when it is shorter than it says. */
struct reader {
    const unsigned char *at, *end;
};

static int read_bytes(struct reader *r, void *out, size_t size)
{
    if ((size_t)(r->end - r->at) < size)
        return -1;
    memcpy(out, r->at, size);
    r->at += size;
    return 0;
}

static int read_path(struct reader *r, char *out)
{
    uint16_t size;
    if (read_bytes(r, &size, sizeof size) != 0 || size >= PATH_MAX || read_bytes(r, out, size) != 0)
        return -1;
    out[size] = 0;
    return strlen(out) == size ? 0 : -1; /* no NUL inside */
}

/* The plan: int32 uid (-1: keep ours), uint32 count, count x int64 (resource, soft, hard), then four
   paths (uint16 length, bytes): stdout, stderr, result, work directory. */
static int parse_plan(struct reader *r, struct plan *plan)
{
    int32_t uid;
    uint32_t count;
    if (read_bytes(r, &uid, sizeof uid) != 0 || read_bytes(r, &count, sizeof count) != 0 || count > MAX_RLIMITS)
        return -1;
    plan->uid = uid;
    plan->n_rlimits = (int)count;
    for (uint32_t i = 0; i < count; i++)
        for (int j = 0; j < 3; j++) {
            int64_t value;
            if (read_bytes(r, &value, sizeof value) != 0)
                return -1;
            plan->rlimits[i][j] = (long)value;
        }
    for (int i = 0; i < 3; i++)
        if (read_path(r, plan->paths[i]) != 0)
            return -1;
    return read_path(r, plan->workdir);
}

/* The child's hardening, in harden.harden()'s order. Returns NULL, or the step that failed (errno set).
   A step that fails before the result file is in place ends the child at once: descriptor 3 is still
   the zygote's, and no record can be written (the worker reports that the sandbox did not start). */
static const char *harden_child(const struct plan *plan)
{
    if (setsid() < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        _exit(127);
    for (int i = 0; i < 3; i++) {
        int fd = open(plan->paths[i], O_WRONLY | O_NOFOLLOW);
        if (fd < 0 || dup2(fd, i + 1) < 0)
            _exit(127);
        close(fd);
    }
    for (int i = 0; i < plan->n_rlimits; i++) {
        struct rlimit limit = {(rlim_t)plan->rlimits[i][1], (rlim_t)plan->rlimits[i][2]};
        if (setrlimit((int)plan->rlimits[i][0], &limit) != 0)
            return "setrlimit";
    }
    /* Opened while still privileged, so the rules can name them whoever we become. */
    int workdir = open(plan->workdir, O_PATH | O_CLOEXEC), proc_self = open("/proc/self", O_PATH | O_CLOEXEC);
    if (workdir < 0 || proc_self < 0)
        return "open the work directory";
    if (plan->uid >= 0) { /* raw system calls: glibc's wrappers consult thread state a clone does not renew */
        gid_t gid = (gid_t)plan->uid;
        if (syscall(SYS_setgroups, 0, NULL) != 0 || syscall(SYS_setresgid, gid, gid, gid) != 0 ||
            syscall(SYS_setresuid, (uid_t)plan->uid, (uid_t)plan->uid, (uid_t)plan->uid) != 0)
            return "drop privileges";
    }
    if (chdir(plan->workdir) != 0)
        return "chdir";
    if (config.landlock) {
        int ruleset = (int)syscall(SYS_landlock_create_ruleset, &config.attr, config.attr_size, 0);
        if (ruleset < 0)
            return "landlock_create_ruleset";
        struct path_beneath own[2] = {{config.proc_self_rights, proc_self}, {config.workdir_rights, workdir}};
        for (int i = 0; i < config.n_rules + 2; i++) {
            const struct path_beneath *rule = i < config.n_rules ? &config.rules[i] : &own[i - config.n_rules];
            if (syscall(SYS_landlock_add_rule, ruleset, RULE_PATH_BENEATH, rule, 0) != 0)
                return "landlock_add_rule";
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
            return "landlock_restrict_self";
        close(ruleset);
    }
    if (config.seccomp.len > 0 && (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
                                   prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &config.seccomp, 0, 0) != 0))
        return "load the seccomp filter";
    /* Every descriptor above the result file goes, but the ones kept (sys.path may read through them). */
    unsigned int low = RESULT_FD + 1;
    for (int i = 0; i <= config.n_keep; i++) {
        unsigned int high = i < config.n_keep ? (unsigned int)config.keep[i] - 1 : ~0U;
        if (low <= high && syscall(SYS_close_range, low, high, 0) != 0) {
            if (errno != ENOSYS)
                return "close descriptors";
            for (unsigned int fd = low; fd <= high && fd < 65536; fd++)
                close((int)fd);
        }
        low = high + 2;
    }
    return NULL;
}

static int read_exactly(int fd, void *buffer, size_t size)
{
    unsigned char *at = buffer;
    while (size > 0) {
        ssize_t got = read(fd, at, size);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        at += got, size -= (size_t)got;
    }
    return 0;
}

static void reply(int fd, int32_t value)
{
    ssize_t written;
    do
        written = write(fd, &value, sizeof value);
    while (written < 0 && errno == EINTR);
}

/* In the child: harden, run child(request, failure), end. Never returns. */
static void run_child(const struct plan *plan, PyObject *child, const unsigned char *request, size_t size)
{
    if (config.fork_hooks)
        PyOS_AfterFork_Child();
    const char *failed = harden_child(plan);
    PyObject *failure = Py_None;
    if (failed != NULL) {
        int error = errno;
        char message[128];
        snprintf(message, sizeof message, "%s: %s", failed, strerror(error));
        failure = PyObject_CallFunction(PyExc_OSError, "is", error, message);
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)request, (Py_ssize_t)size);
    PyObject *result = failure && data ? PyObject_CallFunctionObjArgs(child, data, failure, NULL) : NULL;
    if (result == NULL)
        PyErr_Print(); /* to the sample's stderr */
    _exit(result == NULL);
}

static PyObject *serve(PyObject *self, PyObject *args)
{
    int requests, replies;
    PyObject *child;
    if (!PyArg_ParseTuple(args, "iiO", &requests, &replies, &child))
        return NULL;
    unsigned char *buffer = NULL;
    size_t capacity = 0;
    for (;;) {
        uint32_t size;
        if (read_exactly(requests, &size, sizeof size) != 0)
            break; /* the worker closed the pipe or is gone */
        if (size > capacity) {
            unsigned char *larger = PyMem_RawRealloc(buffer, size);
            if (larger == NULL)
                break;
            buffer = larger, capacity = size;
        }
        if (read_exactly(requests, buffer, size) != 0)
            break;
        struct plan plan;
        struct reader r = {buffer, buffer + size};
        if (parse_plan(&r, &plan) != 0) {
            reply(replies, -EINVAL);
            continue;
        }
        if (config.fork_hooks)
            PyOS_BeforeFork();
        long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0)
            run_child(&plan, child, r.at, (size_t)(r.end - r.at));
        int error = errno;
        if (config.fork_hooks)
            PyOS_AfterFork_Parent();
        reply(replies, pid > 0 ? (int32_t)pid : -error);
    }
    PyMem_RawFree(buffer);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(landlock_attr, rules, proc_self_rights, workdir_rights, keep_fds, seccomp_bpf, fork_hooks)"},
    {"serve", serve, METH_VARARGS, "serve(requests_fd, replies_fd, child): the zygote's loop, until EOF"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_fastspawn", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastspawn(void)
{
    return PyModule_Create(&module);
}
