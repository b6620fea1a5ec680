import com.sun.source.util.JavacTask;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.StringWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;

import javax.tools.Diagnostic;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

/**
 * A warm syntax checker for Java, driven by slmlab.execute.syntax.java.
 *
 * Protocol (stdin/stdout): each request is a line holding the UTF-8 byte length of the source, then
 * exactly that many bytes. Each reply is one JSON line:
 * {"status": "valid"|"invalid"|"error", "line": N|null, "column": N|null, "message": "...", "wrapped": bool}.
 * On start the server prints {"ready": true, "java": "..."} once. It exits when stdin closes.
 *
 * Only javac's parser runs (JavacTask.parse), so unresolved imports or types are not errors: this is a
 * syntax check, not a compile. A snippet that is not a compilation unit is retried inside
 * "class __Wrapper { ... }" because model output is often a bare method.
 */
public final class JavaSyntaxServer {
    private static final String WRAP_HEAD = "class __Wrapper {\n";
    private static final String WRAP_TAIL = "\n}\n";
    private static final int MAX_BYTES = 64 << 20;

    private final JavaCompiler compiler;
    private final StandardJavaFileManager fileManager;
    private final List<String> options;

    private JavaSyntaxServer() {
        compiler = ToolProvider.getSystemJavaCompiler();
        if (compiler == null) {
            throw new IllegalStateException("no system Java compiler: this java is a JRE, not a JDK");
        }
        // One file manager for the whole session: creating one per request costs milliseconds.
        fileManager = compiler.getStandardFileManager(null, Locale.ENGLISH, StandardCharsets.UTF_8);
        // -source (not --release, which loads ct.sym and costs ~6 ms a parse); preview on so that syntax
        // newer than this JDK's final features (e.g. switch patterns on 17) is not reported as an error.
        String feature = Integer.toString(Runtime.version().feature());
        options = List.of("-proc:none", "-Xlint:none", "-source", feature, "--enable-preview");
    }

    public static void main(String[] args) throws InterruptedException {
        // javac's parser is recursive descent: a large stack keeps deeply nested snippets from overflowing.
        Thread worker = new Thread(null, JavaSyntaxServer::serveOrDie, "syntax-server", 512L << 20);
        worker.start();
        worker.join();
    }

    private static void serveOrDie() {
        // Keep the protocol channel to ourselves: anything else printing to System.out goes to stderr.
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
        System.setOut(System.err);
        try {
            new JavaSyntaxServer().serve(new DataInputStream(new BufferedInputStream(System.in, 1 << 16)), out);
        } catch (Throwable e) {
            System.err.println("JavaSyntaxServer: " + e);
            System.exit(2);
        }
        System.exit(0);
    }

    private void serve(DataInputStream in, PrintStream out) throws IOException {
        parse("class __Warmup { void f() { int x = 1; } }"); // load javac's classes before we say ready
        out.print("{\"ready\": true, \"java\": " + json(System.getProperty("java.version")) + "}\n");
        out.flush();
        while (true) {
            int length = readLength(in);
            if (length < 0) {
                return; // clean EOF: the Python side closed us
            }
            byte[] bytes = new byte[length];
            in.readFully(bytes);
            String reply;
            try {
                reply = check(new String(bytes, StandardCharsets.UTF_8));
            } catch (StackOverflowError e) {
                reply = result("invalid", -1, -1, "nesting too deep for javac's parser", false);
            } catch (Throwable e) {
                reply = result("error", -1, -1, "javac crashed: " + e, false);
            }
            out.print(reply);
            out.print('\n');
            out.flush();
        }
    }

    /** The next request's byte length, or -1 at a clean end of input. */
    private static int readLength(DataInputStream in) throws IOException {
        ByteArrayOutputStream digits = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != '\n') {
            if (b < 0) {
                if (digits.size() == 0) {
                    return -1;
                }
                throw new EOFException("end of input inside a length header");
            }
            if (b < '0' || b > '9' || digits.size() > 10) {
                throw new IOException("bad length header byte " + b);
            }
            digits.write(b);
        }
        if (digits.size() == 0) {
            throw new IOException("empty length header");
        }
        long length = Long.parseLong(digits.toString(StandardCharsets.US_ASCII));
        if (length > MAX_BYTES) {
            throw new IOException("request of " + length + " bytes exceeds " + MAX_BYTES);
        }
        return (int) length;
    }

    private String check(String source) {
        Diagnostic<? extends JavaFileObject> plain = parse(source);
        if (plain == null) {
            return result("valid", -1, -1, "", false);
        }
        Diagnostic<? extends JavaFileObject> wrapped = parse(WRAP_HEAD + source + WRAP_TAIL);
        if (wrapped == null) {
            return result("valid", -1, -1, "valid as class members (parsed inside class __Wrapper)", true);
        }
        // Both failed: report the attempt whose first error came later, i.e. the one that understood more.
        // Positions are compared in the original source. An error in the wrapper's tail is placed where
        // javac puts "reached end of file" in plain code: at the end of the last token, not past blanks.
        int end = source.stripTrailing().length();
        long plainAt = offset(plain, 0, end);
        long wrappedAt = offset(wrapped, WRAP_HEAD.length(), end);
        return wrappedAt > plainAt ? error(source, wrappedAt, wrapped, true) : error(source, plainAt, plain, false);
    }

    private static long offset(Diagnostic<? extends JavaFileObject> d, int shift, int end) {
        long at = d.getPosition();
        return at == Diagnostic.NOPOS ? -1 : Math.max(0, Math.min(at - shift, end));
    }

    private static String error(String source, long at, Diagnostic<? extends JavaFileObject> d, boolean wrapped) {
        if (at < 0) {
            return result("invalid", -1, -1, message(d), wrapped);
        }
        // Our own line/column (1-based, in characters): javac's column expands tabs to 8.
        int end = (int) Math.min(at, source.length());
        int lineStart = source.lastIndexOf('\n', end - 1) + 1;
        long line = 1 + source.substring(0, end).chars().filter(c -> c == '\n').count();
        return result("invalid", line, end - lineStart + 1, message(d), wrapped);
    }

    /** The first syntax error javac's parser reports, or null if there is none. */
    private Diagnostic<? extends JavaFileObject> parse(String source) {
        DiagnosticCollector<JavaFileObject> diagnostics = new DiagnosticCollector<>();
        JavaFileObject file = new SimpleJavaFileObject(URI.create("string:///Candidate.java"),
                JavaFileObject.Kind.SOURCE) {
            @Override
            public CharSequence getCharContent(boolean ignoreEncodingErrors) {
                return source;
            }
        };
        JavacTask task = (JavacTask) compiler.getTask(new StringWriter(), fileManager, diagnostics, options,
                null, List.of(file));
        try {
            task.parse();
        } catch (IOException e) {
            throw new IllegalStateException(e); // in-memory source: cannot happen
        }
        for (Diagnostic<? extends JavaFileObject> d : diagnostics.getDiagnostics()) {
            if (d.getKind() == Diagnostic.Kind.ERROR) {
                return d;
            }
        }
        return null;
    }

    private static String message(Diagnostic<? extends JavaFileObject> d) {
        return d.getMessage(Locale.ENGLISH).strip();
    }

    private static String result(String status, long line, long column, String message, boolean wrapped) {
        return "{\"status\": " + json(status)
                + ", \"line\": " + (line > 0 ? Long.toString(line) : "null")
                + ", \"column\": " + (column > 0 ? Long.toString(column) : "null")
                + ", \"message\": " + json(message)
                + ", \"wrapped\": " + wrapped + "}";
    }

    private static String json(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            // Plain if/else rather than arrow switches so the helper also builds on JDK 11.
            if (c == '"') {
                b.append("\\\"");
            } else if (c == '\\') {
                b.append("\\\\");
            } else if (c == '\n') {
                b.append("\\n");
            } else if (c < 0x20 || Character.isSurrogate(c)) {
                // Escape control and surrogate characters so the reply is always valid JSON in UTF-8.
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
