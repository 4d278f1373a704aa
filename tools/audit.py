"""`make audit`: pip-audit over the installed environment, and never a silent pass.

pip-audit asks a vulnerability service (PyPI's JSON API or OSV) about every installed package.
Where that service cannot be reached, pip-audit prints a traceback or, worse, skips every package
("could not be audited") and exits 0. This runs it with ``--strict`` and says plainly that nothing
was audited (exit 2), so CI cannot mistake it for a clean result.
Exit codes: 0 no known vulnerabilities, 1 vulnerabilities found, 2 could not audit.
"""

from __future__ import annotations

import subprocess
import sys

UNREACHABLE = (
    "ConnectionError",
    "Max retries exceeded",
    "Failed to establish a new connection",
    "Name or service not known",
    "Temporary failure in name resolution",
    "timed out",
    "Connection refused",
    "Network is unreachable",
    "ProxyError",
    "SSLError",
    # what pip-audit reports when the service answers nothing useful (e.g. a mirror without
    # PyPI's JSON API); without --strict it would then exit 0 having checked nothing
    "could not be audited",
)


def main() -> int:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--local",
        "--progress-spinner",
        "off",
        "--strict",
        "--skip-editable",
        *sys.argv[1:],
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        print("make audit: NOT AUDITED: pip-audit got no answer from its vulnerability service in 600 s")
        return 2
    output = done.stdout + done.stderr
    if "No module named pip_audit" in output:
        print("make audit: NOT AUDITED: pip-audit is not installed (pip install -e '.[audit]')")
        return 2
    if done.returncode != 0 and any(marker in output for marker in UNREACHABLE):
        print(
            "make audit: NOT AUDITED: pip-audit could not get answers from its vulnerability service "
            "(pypi.org / osv.dev) from this machine; no package was checked. Run it where that is reachable."
        )
        print("  (last line of pip-audit's error: " + output.strip().splitlines()[-1][:300] + ")")
        return 2
    sys.stdout.write(output)
    if done.returncode != 0 and "Found" not in output:  # pip-audit failed for another reason
        print("make audit: NOT AUDITED: pip-audit failed (see above)")
        return 2
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
