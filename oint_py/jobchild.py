"""The detached child of a --dontwait job (jobs.start launches it isolated):
it reads its Call as JSON on stdin, executes it and writes `<job>.json` (or
the --out file), `<job>.exit` its exit code; what it prints on stderr goes to
`<job>.log`. Apart from jobs.py, which only starts and follows jobs, so that
starting one does not import the code that runs it.
"""

import json
import os
import sys

from oint_py.files.atomic import write_atomic
from oint_py.files.private import PRIVATE_FILE
from oint_py.model import Call
from oint_py.outcome import ExitStatus
from oint_py.output import render as output
from oint_py.program import run_call
from oint_py.redact import Redactor


def main(folder: str, job: str) -> None:
    code, redact = ExitStatus.INTERNAL, Redactor()
    written: list[int] = []

    def exit_file(status: int) -> None:
        write_atomic(os.path.join(folder, f"{job}.exit"), f"{int(status)}\n", PRIVATE_FILE)
        written.append(status)

    try:
        call = Call.from_json(json.loads(sys.stdin.buffer.read()))
        redact = call.redactor
        result, mode = (call.out, None) if call.out else (os.path.join(folder, f"{job}.json"), PRIVATE_FILE)
        # recorded batch by batch; a SIGTERM stops it cleanly, and its .exit is written before the handlers go
        code = run_call(call, out=result, mode=mode, then=exit_file)
    except KeyboardInterrupt:
        code = ExitStatus.INTERRUPTED
    except Exception as exc:  # a bug: one masked line in the log, never a traceback
        output.warn(f"internal error: {type(exc).__name__}: {exc}", redact)
    finally:
        if not written:
            exit_file(code)
    sys.exit(int(code))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
