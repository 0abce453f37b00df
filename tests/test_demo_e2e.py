"""Browser end-to-end test of the Gradio demo (`autonat.app`) on a tiny random pipeline.

Needs gradio, the `playwright` Python package and a Chromium binary (Debian's `chromium`;
`AUTONAT_CHROMIUM` overrides the path). Without them the test is skipped, unless
AUTONAT_REQUIRE_E2E=1 (CI), where that is a failure.
"""
from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e,
              pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]  # gradio vs pandas 3

CHROMIUM = os.environ.get("AUTONAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CLASS_NAMES = [f"class-{i}" for i in range(10)]
TIMEOUT_MS = 60_000


def _unavailable(reason: str):
    if os.environ.get("AUTONAT_REQUIRE_E2E") == "1":
        pytest.fail(f"AUTONAT_REQUIRE_E2E=1 but the browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_pipeline(root: Path) -> Path:
    """A self-contained model directory (config.json + weights + tokenizer/) of a random-init tiny
    U-ViT and tokenizer."""
    import torch

    from autonat.bundle import Bundle
    from autonat.models.registry import build_model
    from autonat.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(image_size=28, base_channels=8, ch_mult=(1, 2, 2), codebook_size=32,
                                    codebook_dim=8)).eval()
    model = build_model("tiny", codebook_size=32, seq_len=49, num_classes=10).eval()
    model.meta = {"training": {"class_names": CLASS_NAMES}}
    Bundle(model, tok, name="tiny").save(root)
    return root


def _tiny_text_pipeline(root: Path) -> Path:
    """A self-contained random-init tiny text-to-image model directory (own dual encoder)."""
    import torch

    from autonat.bundle import Bundle
    from autonat.models.registry import build_model
    from autonat.text.conditioner import TextConditioner
    from autonat.text.dual_encoder import DualEncoder, DualEncoderConfig, DualTextEncoder
    from autonat.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    DualEncoder(DualEncoderConfig(max_length=32, dim=16, depth=1, heads=2, embed_dim=16, channels=3,
                                  image_width=8)).save_pretrained(root / "dual")
    tok = Tokenizer(TokenizerConfig(image_size=32, channels=3, base_channels=8, ch_mult=(1, 2, 2),
                                    codebook_size=32, codebook_dim=8)).eval()
    model = build_model("tiny", condition="text", text_dim=16, text_len=32, context_pool=4, codebook_size=32,
                        seq_len=64).eval()
    Bundle(model, tok, TextConditioner(DualTextEncoder(root / "dual")), name="tiny-text").save(root / "pipe")
    return root / "pipe"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(gradio app, url) of the demo served on a free localhost port."""
    if importlib.util.find_spec("gradio") is None:
        _unavailable("gradio is not installed (pip install 'autonat[demo]')")
    root = tmp_path_factory.mktemp("demo")
    old_tmp = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio-tmp")      # served images go here
    from autonat.app import build_app
    demo = build_app(model=str(_tiny_pipeline(root / "pipe")), enat_model=None, max_batch=8, max_steps=6,
                     text_model=str(_tiny_text_pipeline(root / "text")))
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        if old_tmp is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old_tmp


@pytest.fixture(scope="module")
def page(server):
    if importlib.util.find_spec("playwright") is None:
        _unavailable("playwright is not installed (pip install 'autonat[e2e]'; no `playwright install` needed)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set AUTONAT_CHROMIUM)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page()
            pg.set_default_timeout(TIMEOUT_MS)
            pg.goto(server[1], wait_until="domcontentloaded")
            pg.locator("#generate").wait_for(state="visible")
            yield pg
        finally:
            browser.close()


def _status(page) -> str:
    return page.locator("#status textarea").input_value()


def test_generate_shows_samples_strip_and_cost(page):
    assert page.locator("#samples img").count() == 0
    page.locator("#generate").click()
    for elem in ("samples", "strip"):
        page.wait_for_function(
            """id => { const i = document.querySelector('#' + id + ' img');
                       return !!i && !!i.getAttribute('src') && i.complete && i.naturalWidth > 0; }""",
            arg=elem, timeout=TIMEOUT_MS)
    sizes = page.evaluate("""() => ['samples', 'strip'].map(id => {
        const i = document.querySelector('#' + id + ' img'); return [i.naturalWidth, i.naturalHeight]; })""")
    # 8 images of 28 px scaled x4 in one row; strip = 6 steps + result = 7 columns of 112 px.
    assert sizes[0][0] > 8 * 28 * 4 and sizes[1][0] > 7 * 28 * 4, sizes
    page.wait_for_function("() => document.querySelector('#stats').innerText.includes('GFLOPs')",
                           timeout=TIMEOUT_MS)
    stats = page.locator("#stats").inner_text()
    assert "ms" in stats and "latency" in stats, stats
    assert _status(page).startswith("ok:"), _status(page)


def test_autonat_preset_without_searched_strategy_shows_error(page):
    """The tiny pipeline has no strategies/: choosing 'autonat' reports why, the app keeps working."""
    page.locator("#preset input").click()
    page.get_by_role("option", name="autonat", exact=True).click()
    page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('error:')",
                           timeout=TIMEOUT_MS)
    assert "no searched 'autonat' strategy" in _status(page), _status(page)
    page.locator("#preset input").click()
    page.get_by_role("option", name="maskgit", exact=True).click()
    page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('loaded')",
                           timeout=TIMEOUT_MS)


def test_bad_inputs_give_messages_not_crashes(server):
    be = server[0].backend
    label = next(iter(be.labels))
    rows, _ = be.load_table(label, "maskgit", 4)
    assert [r[0] for r in rows] == [1, 2, 3, 4] and rows[-1][1] == 0.0

    bad = [list(r) for r in rows]
    bad[1][1] = 0.99                                    # r increases after step 1
    grid, strip, stats, status = be.generate(label, 0, 4, 2, 0, bad)
    assert grid is None and strip is None and status.startswith("error:") and "non-increasing" in status

    cases = {"number of images must lie in [1, 8]": (0, 4, 9, 0, rows),
             "steps must lie in [1, 6]": (0, 7, 2, 0, rows),
             "has 4 rows but steps = 3": (0, 3, 2, 0, rows),
             "is not a number": (0, 4, 2, 0, [r[:1] + ["x"] + r[2:] for r in rows]),
             "tau1": (0, 4, 2, 0, [r[:2] + [-1.0] + r[3:] for r in rows])}
    for message, (cls, steps, n, seed, table) in cases.items():
        status = be.generate(label, cls, steps, n, seed, table)[3]
        assert status.startswith("error:") and message in status, (message, status)

    grid, strip, stats, status = be.generate(label, 10, 4, 3, 1, rows)   # 10 = all classes in turn
    assert status.startswith("ok:") and grid.size[0] > 3 * 28 * 4 and "GFLOPs" in stats


def test_table_edits_survive_a_change_of_steps(server):
    """Changing T resamples the user's edited table (edits are kept, the status says so); an
    invalid table is replaced by the preset, with the reason."""
    be = server[0].backend
    name = next(iter(be.labels))
    rows, _ = be.load_table(name, "maskgit", 4)
    rows[1][2] = 0.25                                   # an edit: tau1 at step 2
    new, msg = be.retarget_table(name, "maskgit", 6, rows)         # (the test server allows T <= 6)
    assert len(new) == 6 and "resampled from T=4 to T=6" in msg
    assert any(abs(r[2] - 1.0) > 1e-6 for r in new)    # the edit shows in the resampled schedule
    kept, msg = be.retarget_table(name, "maskgit", 4, rows)
    assert kept is None and "kept" in msg
    rows[0][1] = "x"
    reset, msg = be.retarget_table(name, "maskgit", 5, rows)
    assert len(reset) == 5 and "not a valid strategy" in msg


def test_a_text_model_shows_a_prompt_box_and_samples_the_prompts(page, server):
    """Choosing the text model swaps the class list for a prompt box; prompts separated by | are
    sampled in turn; an empty prompt is a message, not a crash."""
    be = server[0].backend
    label = next(lbl for lbl in be.labels if be.is_text(lbl))
    page.get_by_label(label).check()
    page.locator("#prompt textarea").wait_for(state="visible")
    page.wait_for_function("() => !document.querySelector('#class') || "
                           "document.querySelector('#class').offsetParent === null", timeout=TIMEOUT_MS)
    page.locator("#prompt textarea").fill("")
    page.locator("#generate").click()
    page.wait_for_function("() => document.querySelector('#status textarea').value.includes('type a prompt')",
                           timeout=TIMEOUT_MS)
    page.locator("#prompt textarea").fill("red apple | cat face")
    page.locator("#generate").click()
    page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('ok:')",
                           timeout=TIMEOUT_MS)
    page.wait_for_function(
        """() => { const i = document.querySelector('#samples img');
                   return !!i && i.complete && i.naturalWidth > 0; }""", timeout=TIMEOUT_MS)
    # the same prompt and seed give the same image; the columns are the two prompts
    a = be.generate(label, None, 4, 4, 7, be.load_table(label, "maskgit", 4)[0], True, "red apple | cat face")
    b = be.generate(label, None, 4, 4, 7, be.load_table(label, "maskgit", 4)[0], True, "red apple | cat face")
    assert a[3].startswith("ok:") and a[0].tobytes() == b[0].tobytes()
    c = be.generate(label, None, 4, 4, 7, be.load_table(label, "maskgit", 4)[0], True, "green frog")
    assert c[0].tobytes() != a[0].tobytes()
