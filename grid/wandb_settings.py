"""W&B settings shared by the grid's runs and its report: the mode (online, offline, disabled), where offline
runs live, and the `wandb sync` command that uploads them. Imports neither wandb nor torch nor Ray."""

from __future__ import annotations

import configparser
import netrc
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from grid.settings import setting, validate

Mode = Literal["auto", "online", "offline", "disabled"]
MODES: tuple[str, ...] = ("auto", "online", "offline", "disabled")
DEFAULT_BASE_URL = "https://api.wandb.ai"


@dataclass(frozen=True)
class WandbSettings:
    mode: Mode = setting(
        "auto", flag="--wandb", choices=MODES, help="auto: online when an API key is configured, else offline"
    )
    project: str = setting("cifar-grid", flag="--wandb-project", help="the W&B project")
    entity: str | None = setting(None, flag="--wandb-entity", help="the W&B entity (default: the key's own)")
    dir: Path | None = None  # holds the run folders: the grid's runs/NAME/wandb (None: wandb's ./wandb)
    init_timeout: float = 5.0  # seconds wandb.init may take before W&B is given up for the training
    finish_timeout: float = 15.0  # seconds finish() may upload; what is left stays on disk for `wandb sync`

    def __post_init__(self) -> None:
        validate(self)
        if self.dir is not None:
            object.__setattr__(self, "dir", Path(self.dir))


def _settings_file() -> configparser.ConfigParser:
    """wandb's global settings file (`wandb login --host` writes base_url there)."""
    config_dir = os.environ.get("WANDB_CONFIG_DIR") or Path.home() / ".config" / "wandb"
    parser = configparser.ConfigParser()
    parser.read(Path(config_dir) / "settings")
    return parser


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or _settings_file().get("default", "base_url", fallback=DEFAULT_BASE_URL)


def api_key_configured() -> bool:
    """Whether wandb would find credentials: WANDB_API_KEY / WANDB_IDENTITY_TOKEN_FILE, a ~/.netrc entry
    for the W&B host (what `wandb login` writes), or an api_key in wandb's settings file."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc").expanduser()
    try:
        if path.is_file() and netrc.netrc(path).authenticators(urlparse(base_url()).hostname or ""):
            return True
    except (netrc.NetrcParseError, OSError):
        pass  # an unreadable netrc holds no usable key
    return bool(_settings_file().get("default", "api_key", fallback=""))


def resolved_mode(settings: WandbSettings) -> str:
    """ "online" | "offline" | "disabled". Under "auto" the standard WANDB_MODE switch is honoured first."""
    if settings.mode != "auto":
        return settings.mode
    env = os.environ.get("WANDB_MODE", "").lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if api_key_configured() else "offline"


def wandb_dir(settings: WandbSettings) -> Path:
    """The folder holding the run folders, where the offline ones wait for `wandb sync`."""
    if settings.dir is not None:
        return offline_root(settings.dir).absolute()
    return Path(os.environ.get("WANDB_DIR") or ".").absolute() / "wandb"


def sync_command(settings: WandbSettings, offline_runs: bool = False) -> str | None:
    """The `wandb sync` command that uploads an offline grid; None unless the mode is offline or
    `offline_runs` (some online runs fell back to offline).

    It names the folder, not each run: wandb syncs the folders of one run id one after the other in start
    order, which with step = epoch appends a restarted training's epochs to its run; it skips the folders
    of online runs (named run-*, not offline-run-*) unless told otherwise."""
    mode = resolved_mode(settings)
    if mode == "disabled" or (mode == "online" and not offline_runs):
        return None
    args = ["wandb", "sync", "--project", settings.project]
    args += ["--entity", settings.entity] if settings.entity else []
    return shlex.join([*args, str(wandb_dir(settings))])


def redact(text: str) -> str:
    key = os.environ.get("WANDB_API_KEY")
    return text.replace(key, "***") if key else text


def offline_root(folder: Path) -> Path:
    """The folder that holds the run folders: wandb always writes into ROOT/wandb, so a `.../wandb` is used
    as it is and any other folder gets `/wandb` appended."""
    folder = Path(folder)
    return folder if folder.name == "wandb" else folder / "wandb"
