"""The criterion-sensitivity comparison: metamers judged by one criterion, variants side by side."""

import numpy as np
import pandas as pd
import pytest

from metamers import sensitivity
from metamers.criteria import Thresholds


def metamer_content(spearman, pearson, snr_db, predicted, reference) -> dict:
    def column(values) -> np.ndarray:
        return np.asarray(values, dtype=float)[:, None]

    count = len(spearman)
    return {"final_spearman": column(spearman), "final_pearson": column(pearson),
            "final_snr_db": column(snr_db), "predicted_class": column(predicted).astype(int),
            "reference_class": column(reference).astype(int),
            "success": np.ones(count, dtype=bool), "iterations_run": np.array([2, 0, 1][:count]),
            "loss": np.arange(9, dtype=float).reshape(3, 3)[:, :count],
            "pixel_distance": np.arange(count, dtype=float)}


def test_every_deciding_measure_and_the_class_must_pass():
    content = metamer_content(spearman=[0.9, 0.9, np.nan], pearson=[0.9, 0.9, 0.9],
                              snr_db=[20.0, 5.0, 20.0], predicted=[1, 1, 1],
                              reference=[1, 1, 1])
    bars = Thresholds({"spearman": 0.5, "pearson": 0.5, "snr_db": 10.0})
    # the second passes Spearman but fails SNR; the third's NaN Spearman fails
    assert sensitivity.passes_thresholds(content, [bars]).tolist() == [True, False, False]
    content["predicted_class"][0, 0] = 2
    assert not sensitivity.passes_thresholds(content, [bars])[0]
    lenient = Thresholds({"spearman": 0.5}, class_match=False)
    assert sensitivity.passes_thresholds(content, [lenient]).tolist() == [True, True, False]


def test_a_generation_row_reads_the_loss_at_each_metamers_stop():
    content = metamer_content([0.9] * 3, [0.9] * 3, [20.0] * 3, [1] * 3, [1] * 3)
    row = sensitivity.generation_row(content, [Thresholds({"snr_db": 30.0})])
    # loss[iterations_run[i], i]: loss[2, 0], loss[0, 1], loss[1, 2] = 6, 1, 5
    assert row["loss_at_stop"] == 5.0
    assert row["own_success"] == 1.0 and row["judged_success"] == 0.0
    assert row["iterations_run"] == 1.0


def contrasts(means: list[float], half_width: float) -> pd.DataFrame:
    rows = []
    for relation, mean in zip(["same model", "other seed"], means):
        for image_set in ("metamer", "pixel_control"):
            rows.append({"optimizer": "ngd", "init": "uniform", "depth": "deepest",
                         "generator_style": "standard", "relation": relation,
                         "image_set": image_set, "metric": "transfers", "mean": mean,
                         "ci_low": mean - half_width, "ci_high": mean + half_width,
                         "metamers": 40, "pairs": 80, "generators": 2})
    return pd.DataFrame(rows)


def test_a_variant_differs_only_where_its_ci_is_disjoint_from_the_first():
    compared = sensitivity.compare_contrasts({
        "strict": contrasts([0.5, 0.1], 0.05), "lenient": contrasts([0.58, 0.3], 0.05)})
    # 0.53-0.63 overlaps 0.45-0.55; 0.25-0.35 is disjoint from 0.05-0.15
    assert compared[("lenient", "differs")].tolist() == [False, True]
    assert sensitivity.changed_cells(compared, ["strict", "lenient"]) == {"lenient": (1, 2)}
    table = "\n".join(sensitivity.contrast_markdown(compared, ["strict", "lenient"]))
    assert "| other seed | standard |  |  |  |  | 10.0 | 30.0* |" in table
    assert "| same model | standard |  |  |  |  | 50.0 | 58.0 |" in table


@pytest.mark.parametrize("variant_means", [[0.5, 0.1], [0.52, 0.12]])
def test_the_same_answers_change_no_cell(variant_means):
    compared = sensitivity.compare_contrasts({
        "strict": contrasts([0.5, 0.1], 0.05), "run_on": contrasts(variant_means, 0.05)})
    assert sensitivity.changed_cells(compared, ["strict", "run_on"]) == {"run_on": (0, 2)}


def test_rows_follow_findings_order_of_relations_and_styles():
    strict = contrasts([0.5, 0.1], 0.05)
    robust = strict.assign(generator_style="adversarial linf")
    table = pd.concat([robust, strict.iloc[::-1]], ignore_index=True)
    lines = sensitivity.contrast_markdown(
        sensitivity.compare_contrasts({"strict": table}), ["strict"])
    rows = [line.split(" | ")[:2] for line in lines if line.startswith("| ") and "%" not in line
            and "relation" not in line]
    assert rows == [["| same model", "standard"], ["| same model", "adversarial linf"],
                    ["| other seed", "standard"], ["| other seed", "adversarial linf"]]
