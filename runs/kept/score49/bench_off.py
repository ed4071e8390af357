"""Round 55: scripts/benchmark_score.py with the level switch off (beat_level_switch .inf), to price the switch."""
import runpy, sys
import transcribe.score as S
S.configured_level_switch = lambda: (float("inf"), float("inf"), 0.0)
sys.argv = ["scripts/benchmark_score.py"] + sys.argv[1:]
runpy.run_path("scripts/benchmark_score.py", run_name="__main__")
