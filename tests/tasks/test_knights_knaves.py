import itertools

import numpy as np
import pytest

from r1jax.tasks import format as format_lib
from r1jax.tasks import knights_knaves as kk

PROBLEM = {
    "names": ["Zoey", "Oliver", "Emma"],
    "solution": [True, False, True],
    "solution_text_format": "(1) Zoey is a knight\n(2) Oliver is a knave\n(3) Emma is a knight",
}
RIGHT = "(1) Zoey is a knight\n(2) Oliver is a knave\n(3) Emma is a knight"


def respond(answer, thinking="Zoey must be a knight.\n"):
    return f"{thinking}</think>\n<answer> {answer} </answer>"


@pytest.mark.parametrize(
    "completion, reason, score",
    [
        (respond(RIGHT), "correct", 3.0),
        (respond("Emma is a knight, Zoey is a knight, and Oliver is a knave."), "correct", 3.0),
        (respond("zoey IS A   Knight\noliver is a knave\nEMMA is a knight"), "correct", 3.0),
        (respond(RIGHT.replace("Oliver is a knave", "Oliver is a knight")), "wrong", -0.5),
        (respond("(1) Zoey is a knight\n(2) Oliver is a knave"), "unparseable", -1.0),
        (respond(RIGHT + " and all knights are nice"), "unparseable", -1.0),
        (
            respond("(1) Zoey is a knight\n(2) Oliver is knave\n(3) Emma is a knight"),
            "unparseable",
            -1.0,
        ),
        ("<think> again</think><answer>" + RIGHT + "</answer>", "bad_format", -3.0),
        ("Zoey...</think>" + RIGHT, "bad_format", -3.0),
        ("<answer>" + RIGHT + "</answer></think>", "bad_format", -3.0),
        ("hm</think><answer>   </answer>", "no_answer", -1.0),
    ],
)
def test_verify_table(completion, reason, score):
    verdict = kk.verify(completion, PROBLEM)
    assert (verdict.reason, verdict.score) == (reason, score)
    assert verdict.correct == (reason == "correct")
    assert verdict.well_formed == (reason != "bad_format")


def test_reward_totals_and_scales():
    totals = {
        kk.verify(respond(a), PROBLEM).score for a in (RIGHT, RIGHT.replace("knave", "knight"), "?")
    }
    assert totals == {3.0, -0.5, -1.0}
    assert kk.verify(respond(RIGHT), PROBLEM, format_reward=0.5, correct_reward=1.0).score == 1.5


def test_problem_from_names_and_solution_only():
    problem = {"names": PROBLEM["names"], "solution": PROBLEM["solution"]}
    assert kk.verify(respond(RIGHT), problem).correct


def test_qwen_template_cuts_at_assistant_colon_like_logic_rl():
    completion = "Assistant: <think>hm</think><answer>" + RIGHT + "</answer>"
    assert kk.verify(completion, PROBLEM, template="qwen_instruct").score == 3.0
    assert kk.verify(completion, PROBLEM).score == -3.0  # two <think> with the prefill


def test_solver_and_rendering_follow_mem_kk_logic():
    statements = [["lying", 1], ["and", ["telling-truth", 0], ["telling-truth", 1]]]
    assert kk.solutions(statements) == [(True, False)]
    names = ["Emma", "Liam"]
    assert kk.render_statement(names, ["not", ["lying", 1]]) == "Liam is not a knave"
    assert kk.render_statement(names, ["or", ["lying", 1], ["telling-truth", 0]]) == (
        "Liam is a knave or Emma is a knight"
    )
    assert kk.render_statement(names, ["->", ["lying", 1], ["telling-truth", 0]]) == (
        "If Liam is a knave then Emma is a knight"
    )
    assert len(kk.COMMON_NAMES) == 51 and len(set(kk.COMMON_NAMES)) == 51
    assert len(kk.SAYING_TEMPLATES) == 18


@pytest.mark.parametrize("n_people", [2, 3, 4, 5, 6, 7, 8])
def test_generated_puzzles_have_exactly_one_solution(n_people):
    for index in range(8):
        problem = kk.generate(np.random.default_rng([n_people, index]), n_people=n_people)
        assert kk.solutions(problem["statements"]) == [tuple(problem["solution"])]
        assert len(problem["names"]) == len(set(problem["names"])) == n_people
        quiz = problem["quiz"]
        assert quiz.startswith(
            "A very special island is inhabited only by knights and knaves. Knights always tell "
            f"the truth, and knaves always lie. You meet {n_people} inhabitants: "
        )
        assert quiz.endswith(" So who is a knight and who is a knave?")
        # the ground truth verifies as correct
        assert kk.verify(respond(problem["solution_text_format"]), problem).score == 3.0


def test_no_person_calls_themself_a_knave():
    for index in range(50):
        problem = kk.generate(np.random.default_rng([1, index]), n_people=4)

        def leaves(statement):
            if statement[0] in ("telling-truth", "lying"):
                return [statement]
            return [leaf for part in statement[1:] for leaf in leaves(part)]

        for person, statement in enumerate(problem["statements"]):
            assert ["lying", person] not in leaves(statement)


def test_generator_is_deterministic_given_the_seed():
    first = [kk.generate(np.random.default_rng([0, i])) for i in range(5)]
    assert first == [kk.generate(np.random.default_rng([0, i])) for i in range(5)]


def test_prompt_templates_are_exact():
    problem = {"quiz": "QUIZ"}
    assert kk.prompt(problem).endswith(
        "(1) Zoey is a knight\n(2) Oliver is a knight\n(3)... </answer>.\n\nUser:QUIZ\nAssistant: <think>"
    )
    assert kk.prompt(problem).startswith(
        "The user asks a question, and the Assistant solves it.The assistant first thinks"
    )
    qwen = kk.prompt(problem, template="qwen_instruct")
    assert "</think> and<answer> </answer> tags" in qwen and "</answer>.  Now the user" in qwen
    assert qwen.endswith("<|im_start|>user\nQUIZ\n<|im_end|>\n<|im_start|>assistant\n<think>")


@pytest.mark.parametrize("n_people", [2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("method", kk.REFERENCE_METHODS)
def test_reference_completions_verify_correct(n_people, method):
    for seed in range(15):
        problem = kk.generate(np.random.default_rng([n_people, seed]), n_people=n_people)
        text = kk.reference_completion(problem, np.random.default_rng(seed), method=method)
        verdict = kk.verify(text, problem)  # the default template, "base"
        assert verdict.correct and verdict.score == 3.0, (problem["quiz"], text)
        assert kk.verify(text, problem, template="qwen_instruct").correct
        reasons = {"search": "Assume ", "ordered": "Assume ", "enumerate": " fits."}
        assert reasons.get(method, "The answer is") in text
        assert text.count("</think>") == 1


def test_verify_traces_check_each_stated_assignment_and_guess_traces_are_them_without_checks():
    """A ``verify`` trace states assignments and checks each one claim by claim: every check
    step's "must be" is the speaker's role and its "it is" the claim's truth under the stated
    roles; a stated assignment is called wrong exactly when it is not the solution, and the
    check stops at the first claim that does not fit. The ``guess`` twin is the same text
    without the checks and the wrong assignments; only ``verify`` carries a reflection marker."""
    from r1jax.verifiers.reflection import reflection_count

    wrong_counts = []
    for seed in range(30):
        problem = kk.generate(np.random.default_rng([9, seed]), n_people=(2, 3))
        names, statements = problem["names"], problem["statements"]
        solution = kk.solutions(statements)[0]
        text = kk.reference_completion(problem, np.random.default_rng(seed), method="verify")
        lines = text.splitlines()
        stated = [line for line in lines if line.strip().startswith("The answer is: ")]
        checks = [line for line in lines if line.startswith(format_lib.CHECK_PHRASE)]
        assert len(stated) == len(checks) and reflection_count(text) == len(checks)
        for said, check in zip(stated, checks):
            roles = said.strip().removeprefix("The answer is: ").removesuffix(".").split(", ")
            assignment = tuple(role.endswith("a knight") for role in roles)
            steps = check.removeprefix(format_lib.CHECK_PHRASE).rsplit(". ", 1)[0].split("; ")
            for person, step in enumerate(steps):
                needed = "true" if assignment[person] else "false"
                actual = "true" if kk.holds(statements[person], assignment) else "false"
                assert step.startswith(f"{names[person]} is ")
                assert step.endswith(f"must be {needed}, and it is {actual}"), step
            fits = assignment == solution
            assert check.endswith("Everything fits." if fits else "So this is wrong.")
            assert fits == (said is stated[-1])
            assert len(steps) == len(names) or not fits
        wrong_counts.append(len(stated) - 1)
        guess = kk.reference_completion(problem, method="guess")
        assert guess.splitlines() == [" " + stated[-1].strip(), *lines[-len(names) - 1 :]]
        assert reflection_count(guess) == 0
    assert min(wrong_counts) == 0 and max(wrong_counts) == 2


def test_enumerate_traces_check_assignments_in_order_until_the_solution():
    """An ``enumerate`` trace lists the claims in short form, then tries the assignments in
    ``itertools.product`` order (knights first); each try checks people in order, every leaf's
    role looked up in the tried assignment, and stops at the first claim that does not fit;
    the last try is the solution, where every claim fits."""
    for seed in range(30):
        problem = kk.generate(np.random.default_rng([5, seed]), n_people=(2, 3, 4))
        names, statements = problem["names"], problem["statements"]
        lines = kk.reference_completion(problem, method="enumerate").splitlines()
        claims = [f"{n}: {kk.short_claim(names, s)}" for n, s in zip(names, statements)]
        assert lines[0] == " " + ". ".join(claims) + "."
        tries = lines[1 : lines.index("</think>")]
        orders = list(itertools.product((True, False), repeat=len(names)))
        solution = tuple(kk.solutions(statements)[0])
        assert len(tries) == orders.index(solution) + 1
        for line, assignment in zip(tries, orders):
            role = {n: "knight" if k else "knave" for n, k in zip(names, assignment)}
            head, *checks = line.split(". ")
            assert head == ", ".join(f"{n} {role[n]}" for n in names)
            for person, check in enumerate(checks):
                said, _, work = check.rstrip(".").partition(": ")
                assert said == f"{names[person]} {role[names[person]]} says " + kk.short_claim(
                    names, statements[person]
                )
                *lookups, truth, verdict = work.split(", ")
                for lookup in lookups:
                    name, looked_up, _ = lookup.split(" ")
                    assert looked_up == role[name]
                holds = kk.holds(statements[person], assignment)
                assert truth == ("true" if holds else "false")
                assert verdict == ("fits" if holds == assignment[person] else "fails")
            verdicts = [check.rstrip(".").rsplit(", ", 1)[1] for check in checks]
            assert (
                verdicts == ["fits"] * len(names)
                if assignment == solution
                else (verdicts[-1] == "fails" and set(verdicts[:-1]) <= {"fits"})
            )


def test_short_claims_read_as_the_statements_they_write():
    names = ["Emma", "Liam"]
    assert kk.short_claim(names, ["lying", 1]) == "Liam knave"
    assert kk.short_claim(names, ["not", ["telling-truth", 0]]) == "not Emma knight"
    assert kk.short_claim(names, ["or", ["telling-truth", 0], ["lying", 1]]) == (
        "Emma knight or Liam knave"
    )
    assert kk.short_claim(names, ["->", ["lying", 0], ["lying", 1]]) == (
        "if Emma knave then Liam knave"
    )
    assert kk.short_claim(names, ["<=>", ["lying", 0], ["telling-truth", 1]]) == (
        "Emma knave iff Liam knight"
    )


def test_reference_completion_is_a_function_of_the_rng():
    problem = kk.generate(np.random.default_rng(11), n_people=6)
    texts = {kk.reference_completion(problem, np.random.default_rng(s)) for s in range(8)}
    again = {kk.reference_completion(problem, np.random.default_rng(s)) for s in range(8)}
    assert texts == again and len(texts) > 1
    assert kk.reference_completion(problem) == kk.reference_completion(problem)
    ordered = kk.reference_completion(problem, np.random.default_rng(1), method="ordered")
    assert ordered == kk.reference_completion(problem, np.random.default_rng(2), method="ordered")


def test_reference_completion_reasons_through_contradictions():
    # Emma: "Liam is a knave"; Liam: "Emma is a knight and Liam is a knight". Unique: (T, F).
    problem = {
        "names": ["Emma", "Liam"],
        "statements": "(('lying', 1), ('and', ('telling-truth', 0), ('telling-truth', 1)))",
    }
    text = kk.reference_completion(problem, method="ordered")
    assert text.splitlines()[1] == (
        "Assume Emma is a knight. Then Emma's claim that Liam is a knave must be true, and no "
        "contradiction is found so far."
    )
    assert "Assume Liam is a knight." in text and "so Liam is not a knight." in text
    assert text.endswith("<answer> (1) Emma is a knight\n(2) Liam is a knave </answer>")
    assert kk.verify(text, {**problem, "solution": [True, False]}).correct


def test_reference_completion_needs_names_and_statements():
    with pytest.raises(ValueError, match="names and statements"):
        kk.reference_completion({"solution_text_format": "(1) Emma is a knight"})
    with pytest.raises(ValueError, match="method"):
        kk.reference_completion({}, method="bogus")
