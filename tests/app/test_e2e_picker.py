"""End to end in a real browser: the model picker chooses among a build's two candidate models.

Upload ``two_candidate_models.ipynb`` (a baseline and a tuned model left in the namespace), build:
handoff ships the tuned one and offers the other in the **Model to ship** picker under the result;
pick the baseline and rebuild: version 2 ships the baseline, chosen "with the Model to ship picker".
Screenshots 50-59 go to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser import BUILD_TIMEOUT, RENDER_TIMEOUT, STARTUP_TIMEOUT, UI, Server, choose, open_build_page
from handoff.store import Store
from helpers import SAMPLES

SAMPLE = "two_candidate_models"


def _passed(ui: UI, version: int):
    return ui.alert(re.compile(rf"{SAMPLE} version {version}\s*passed in [\d.]+ s"))


@pytest.mark.timeout(600)
def test_the_model_picker_rebuilds_with_the_other_candidate(server: Server, ui: UI, tmp_path: Path) -> None:
    page, expect = ui.page, ui.expect
    ui.number_shots(50, 59)

    open_build_page(ui, server.url, timeout=STARTUP_TIMEOUT * 1000)
    page.locator("input[type=file]").first.set_input_files(str(SAMPLES / f"{SAMPLE}.ipynb"))
    expect(page.get_by_label("Model name", exact=True)).to_have_value(SAMPLE)
    ui.no_exception()
    ui.shot("two-candidates-uploaded")

    page.get_by_role("button", name="Build", exact=True).click()
    page.wait_for_url(re.compile(r"[?&]job="), timeout=RENDER_TIMEOUT)
    first_job = page.url
    expect(_passed(ui, 1)).to_be_visible(timeout=BUILD_TIMEOUT)
    picker = page.get_by_role("combobox", name="Model to ship", exact=True)
    expect(picker).to_have_value(re.compile(r"^tuned · HistGradientBoostingClassifier"))
    ui.no_exception()
    ui.shot("picker-offers-the-other-model")

    choose(ui, "Model to ship", "baseline · Pipeline · cell 5")
    ui.shot("baseline-picked")
    page.get_by_role("button", name="Rebuild with this model", exact=True).click()
    page.wait_for_url(lambda url: url != first_job and "job=" in url, timeout=RENDER_TIMEOUT)
    expect(_passed(ui, 2)).to_be_visible(timeout=BUILD_TIMEOUT)
    expect(page.get_by_text(re.compile(r"baseline \(sklearn\.pipeline\.Pipeline\)")).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"named with the Model to ship picker")).first).to_be_visible()
    expect(page.get_by_text("--model-var")).to_have_count(0)
    ui.no_exception()
    ui.shot("rebuilt-with-the-baseline")

    stored = Store(tmp_path / "store").get_version(SAMPLE, 2).build  # the server fixture's store
    assert stored.outputs.model.variable == "baseline" and stored.inputs.options["model_var"] == "baseline"
