/* The zygote's fork and the sandboxed child's hardening, in C.

   Written by hand because no library does it: the same steps as harden.harden() (see there for why
   each one), made as plain system calls. In Python every object a freshly forked child touches costs
   it a copy of that object's page (copy-on-write), and the hardening touched some 150 of them, half
   of a short sample's cost; here the child touches its stack and a few static variables.

   Optional: when this module is not built (no C compiler), the zygote forks with ctypes and the
   child hardens itself in Python, with the same effect.

   configure(...) stores what is the same for every child (the Landlock rules, the descriptors to
   keep, the seccomp filter); spawn(plan) forks a child of the caller's parent (CLONE_PARENT: the
   worker is the zygote's parent, and must be the children's), hardens the child and returns 0 in
   it; in the zygote it returns the child's pid. A hardening step that fails raises OSError in the
   child, naming the step. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
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

static int copy_path(PyObject *text, char *out)
{
    Py_ssize_t size;
    const char *s = PyUnicode_AsUTF8AndSize(text, &size);
    if (s == NULL)
        return -1;
    if (size >= PATH_MAX || (Py_ssize_t)strlen(s) != size) {
        PyErr_SetString(PyExc_ValueError, "path too long or with a NUL byte");
        return -1;
    }
    memcpy(out, s, size + 1);
    return 0;
}

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
        if (!PyArg_ParseTuple(attr, "KKKn", &fs, &net, &scoped, &size) || size > (Py_ssize_t)sizeof config.attr)
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

static int parse_plan(PyObject *args, struct plan *plan)
{
    PyObject *paths, *workdir, *rlimits;
    if (!PyArg_ParseTuple(args, "(OOlO)", &paths, &workdir, &plan->uid, &rlimits))
        return -1;
    if (!PyTuple_Check(paths) || PyTuple_GET_SIZE(paths) != 3 || !PyList_Check(rlimits) ||
        PyList_GET_SIZE(rlimits) > MAX_RLIMITS) {
        PyErr_SetString(PyExc_ValueError, "invalid sandbox plan");
        return -1;
    }
    for (int i = 0; i < 3; i++)
        if (copy_path(PyTuple_GET_ITEM(paths, i), plan->paths[i]) < 0)
            return -1;
    if (copy_path(workdir, plan->workdir) < 0)
        return -1;
    plan->n_rlimits = (int)PyList_GET_SIZE(rlimits);
    for (int i = 0; i < plan->n_rlimits; i++)
        if (!PyArg_ParseTuple(PyList_GET_ITEM(rlimits, i), "lll", &plan->rlimits[i][0], &plan->rlimits[i][1],
                              &plan->rlimits[i][2]))
            return -1;
    return 0;
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

static PyObject *spawn(PyObject *self, PyObject *args)
{
    struct plan plan;
    if (parse_plan(args, &plan) < 0)
        return NULL;
    if (config.fork_hooks)
        PyOS_BeforeFork();
    long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        if (config.fork_hooks)
            PyOS_AfterFork_Child();
        const char *failed = harden_child(&plan);
        if (failed != NULL) {
            int error = errno;
            return PyErr_Format(PyExc_OSError, "%s: %s", failed, strerror(error));
        }
        return PyLong_FromLong(0);
    }
    int error = errno;
    if (config.fork_hooks)
        PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(pid);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(landlock_attr, rules, proc_self_rights, workdir_rights, keep_fds, seccomp_bpf, fork_hooks)"},
    {"spawn", spawn, METH_VARARGS, "spawn((paths, workdir, uid, rlimits)) -> pid in the zygote, 0 in the child"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_fastspawn", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastspawn(void)
{
    return PyModule_Create(&module);
}
