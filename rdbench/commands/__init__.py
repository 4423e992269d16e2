"""What each `rdbench` subcommand does; cli.py parses the arguments and calls these.

The commands are the edge of rdbench: they read result files and published curves, hand
DataFrames to analysis, and write what it returns (through analysis/report). Heavy modules are
imported inside each command, so that parsing the command line stays fast.

    common      exit codes, the default output folder, argument helpers
    inputs      reading results, curves and runs for analysis; writing a report
    measuring   run, codecs, metrics, datasets
    profiling   profile (one codec spec's cost on one image)
    analysing   bdrate, plot, report
    learning    train, export, ablate
"""

from rdbench.commands.analysing import cmd_bdrate, cmd_plot, cmd_report, cmd_targets
from rdbench.commands.common import DEFAULT_RESULTS_DIR, EXIT_CLUSTER, EXIT_ITEMS_FAILED, EXIT_NO_BD, EXIT_STORE, EXIT_USAGE
from rdbench.commands.inputs import Inputs, load_inputs, read_runs, relative_command, relative_paths, write_report
from rdbench.commands.learning import cmd_ablate, cmd_export, cmd_train
from rdbench.commands.measuring import cmd_codecs, cmd_datasets, cmd_metrics, cmd_run
from rdbench.commands.profiling import cmd_profile

__all__ = [
    "DEFAULT_RESULTS_DIR", "EXIT_CLUSTER", "EXIT_ITEMS_FAILED", "EXIT_NO_BD", "EXIT_STORE", "EXIT_USAGE", "Inputs",
    "cmd_ablate", "cmd_bdrate", "cmd_codecs", "cmd_datasets", "cmd_export", "cmd_metrics", "cmd_plot", "cmd_profile", "cmd_report",
    "cmd_run", "cmd_targets", "cmd_train", "load_inputs",
    "read_runs", "relative_command", "relative_paths", "write_report",
]
