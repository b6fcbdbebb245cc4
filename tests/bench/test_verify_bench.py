import argparse

from r1jax.bench import verify as verify_bench


def parse(argv):
    parser = argparse.ArgumentParser()
    verify_bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_cases_mix_correct_wrong_and_malformed():
    for task in ("countdown", "kk", "math", "multiplication"):
        completions, problems = verify_bench.make_cases(task, 40, seed=0)
        assert len(completions) == len(problems) == 40
        assert completions == verify_bench.make_cases(task, 40, seed=0)[0]


def test_run_reports_throughput_and_agreement(capsys):
    results = verify_bench.run(parse(["--task", "countdown", "--num", "60", "--workers", "1"]))
    assert results["pool_local_mismatches"] == 0 and results["pool_timeouts"] == 0
    assert results["in_process_per_second"] > 0 and results["pool_per_second"] > 0
    assert 0.2 < results["accuracy"] < 0.7
    assert "verifications/s" in capsys.readouterr().out
