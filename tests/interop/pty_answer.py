#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and answers its prompts, in order.

    pty_answer.py 'REGEX=ANSWER' ... -- COMMAND ARGS...

Each REGEX is awaited in the command's terminal output (after what the previous one
matched); when it appears, ANSWER and a newline are typed. The whole transcript is
printed on stdout at the end, and the exit code is the command's. A prompt that does not
come within 60 seconds ends the run with exit code 124.
"""
import os
import pty
import re
import select
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    if "--" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    split = args.index("--")
    answers = [a.split("=", 1) for a in args[:split]]
    command = args[split + 1 :]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    transcript = b""
    seen = 0
    deadline = time.monotonic() + 60
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            transcript += chunk
        if answers:
            pattern, answer = answers[0]
            match = re.search(pattern.encode(), transcript[seen:])
            if match:
                seen += match.end()
                os.write(fd, answer.encode() + b"\n")
                answers.pop(0)
                deadline = time.monotonic() + 60
        if time.monotonic() > deadline:
            sys.stdout.write(transcript.decode(errors="replace"))
            print(f"\npty_answer: no prompt matching {answers[0][0]!r}", file=sys.stderr)
            os.kill(pid, 9)
            return 124
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(transcript.decode(errors="replace"))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
