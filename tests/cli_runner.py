"""Running the real ``enforgate-webhooks`` console script, as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

_SCRIPT = shutil.which("enforgate-webhooks", path=str(Path(sys.executable).parent))


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 60,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; the environment is this one plus ``env``."""
    assert _SCRIPT, "enforgate-webhooks is not installed in this environment"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENFORGATE_")}
    full_env.update(env or {})
    return subprocess.run(
        [_SCRIPT, *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
