"""The `onereward` command. Thin: parse arguments, call the library, show the result.

Every command lives in the module that owns its work (`<area>/commands.py`) and is registered here. A user's
mistake raises `UserError`, which `main` prints as one line on stderr with exit status 2: never a traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from onereward.errors import UserError

# The embedded default never touches a model hub; a user who wants hub ids sets HF_HUB_OFFLINE=0 explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="OneReward: multi-task RL of a mask-guided fill model with one VLM reward model (arXiv 2508.21066).",
)

# --- command registrations (one block per area) ---
# --- toyworld ---
from onereward.toyworld.commands import score as score_command  # noqa: E402
from onereward.toyworld.commands import world as world_command  # noqa: E402
from onereward.toyworld.commands import world_grid as world_grid_command  # noqa: E402

app.command("world")(world_command)
app.command("score")(score_command)
app.command("world-grid")(world_grid_command)
# --- fill model ---
from onereward.models.commands import build_tiny_flux_command, fill_command  # noqa: E402
from onereward.models.pretrain import pretrain_command  # noqa: E402

app.command("fill")(fill_command)
app.command("build-tiny-flux")(build_tiny_flux_command)
app.command("pretrain")(pretrain_command)
# --- reward model ---
from onereward.reward.commands import (  # noqa: E402
    build_tiny_rm_command,
    collect_command,
    eval_reward_command,
    judge_command,
    train_reward_command,
)

app.command("build-tiny-rm")(build_tiny_rm_command)
app.command("collect")(collect_command)
app.command("train-reward")(train_reward_command)
app.command("eval-reward")(eval_reward_command)
app.command("judge")(judge_command)
# --- data curation ---
from onereward.data.commands import (  # noqa: E402
    build_tiny_clip_command,
    candidates_command,
    import_labels_command,
    select_command,
)

app.command("select")(select_command)
app.command("build-tiny-clip")(build_tiny_clip_command)
app.command("candidates")(candidates_command)
app.command("import-labels")(import_labels_command)
# --- rl ---
from onereward.rl.commands import export_command, refs_command, train_command  # noqa: E402

app.command("train")(train_command)
app.command("refs")(refs_command)
app.command("export")(export_command)
# --- eval / demo ---
from onereward.eval.commands import benchmark_command, demo_command, eval_command, report  # noqa: E402

app.command("report")(report)
app.command("eval")(eval_command)
app.command("benchmark")(benchmark_command)
app.command("demo")(demo_command)


def main() -> None:
    try:
        app()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
