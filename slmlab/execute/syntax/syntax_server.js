'use strict';
// A warm syntax checker for JavaScript, driven by slmlab.execute.syntax.javascript.
//
// Protocol (stdin/stdout): each request is a line holding the UTF-8 byte length of the source, then
// exactly that many bytes. Each reply is one JSON line:
// {"status": "valid"|"invalid"|"error", "line": N|null, "message": "...", "module": bool}.
// On start the server prints {"ready": true, "node": "..."} once. It exits when stdin closes.
//
// Code is only compiled (new vm.Script), never run. Source that is not a valid script is retried as
// an ES module when this node has vm.SourceTextModule (needs --experimental-vm-modules), because
// import/export is valid JavaScript that the script goal rejects.

const vm = require('vm');

const FILENAME = 'candidate.js';
const MAX_BYTES = 64 << 20;

function lineOf(error) {
  // V8 puts "candidate.js:LINE" as the first line of a compile error's stack.
  const match = /^candidate\.js:(\d+)/.exec(String(error.stack || ''));
  return match ? Number(match[1]) : null;
}

function compiles(make) {
  try {
    make();
    return null;
  } catch (error) {
    return error;
  }
}

function check(source) {
  const scriptError = compiles(() => new vm.Script(source, { filename: FILENAME }));
  if (scriptError === null) {
    return { status: 'valid', line: null, message: '', module: false };
  }
  if (typeof vm.SourceTextModule === 'function') {
    const moduleError = compiles(() => new vm.SourceTextModule(source, { identifier: FILENAME }));
    if (moduleError === null) {
      return { status: 'valid', line: null, message: 'valid as an ES module', module: true };
    }
  }
  // Module errors carry no line, so the script's error is the one reported.
  if (scriptError instanceof SyntaxError) {
    return { status: 'invalid', line: lineOf(scriptError), message: scriptError.message, module: false };
  }
  if (scriptError instanceof RangeError) {
    // V8's parser ran out of stack: node cannot load this program either.
    return { status: 'invalid', line: null, message: `nesting too deep for V8's parser (${scriptError.message})`, module: false };
  }
  return { status: 'error', line: null, message: `node-vm crashed: ${scriptError}`, module: false };
}

let pending = Buffer.alloc(0);

function drain() {
  const replies = [];
  for (;;) {
    const newline = pending.indexOf(10);
    if (newline < 0) break;
    const header = pending.subarray(0, newline).toString('ascii');
    if (!/^\d{1,10}$/.test(header) || Number(header) > MAX_BYTES) {
      process.stderr.write(`syntax_server.js: bad length header ${JSON.stringify(header.slice(0, 40))}\n`);
      process.exit(3);
    }
    const length = Number(header);
    if (pending.length < newline + 1 + length) break;
    const source = pending.subarray(newline + 1, newline + 1 + length).toString('utf8');
    pending = pending.subarray(newline + 1 + length);
    replies.push(JSON.stringify(check(source)));
  }
  // One write per chunk of requests: a pipelined batch costs one syscall, not one per snippet.
  if (replies.length > 0) process.stdout.write(replies.join('\n') + '\n');
}

process.stdin.on('data', (chunk) => {
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  drain();
});
process.stdin.on('end', () => process.exit(0));
process.stdout.on('error', () => process.exit(0)); // the Python side went away

process.stdout.write(JSON.stringify({ ready: true, node: process.version }) + '\n');
