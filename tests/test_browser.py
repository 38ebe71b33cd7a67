"""In a real browser: every notebook runs in JupyterLab on the smoke profile, and report.html shows.

A module fixture starts JupyterLab (``jupyter lab`` of this environment, on a free port, with a
random token) on a temporary copy of ``notebooks/`` (JupyterLab autosaves: the committed notebooks
are never opened), with ``NML_PROFILE=smoke`` and ``NML_OUTPUT_DIR`` in its environment, which the
notebooks' ``parameters`` cells read, and no ``MPLBACKEND`` (the kernel's inline backend draws the
figures). Playwright drives the Debian ``chromium`` (``make setup`` installs it; no browser is
downloaded from elsewhere) headless: for each notebook, *Run → Run All Cells*, wait until the
kernel is idle and every cell has run (or one failed), then read the page: no cell shows an error,
every figure cell shows a loaded image, the ``## Findings`` section shows a table. A screenshot of
each page is saved in the test's temporary folder (pytest keeps it after a failure; its path is in
the failure message). Then ``nml report`` writes the report of what the notebooks wrote, and the
browser opens its ``report.html``: every image loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from nml._infra.paths import project_root
from nml.runner import discover_notebooks

pytestmark = pytest.mark.slow

NOTEBOOKS_DIR = project_root() / "notebooks"
BIN = Path(sys.executable).parent
SERVER_TIMEOUT = 90  # s, for JupyterLab to answer
NOTEBOOK_TIMEOUT = 600  # s, for one notebook's Run All on smoke (about 20 s with warm caches)
FIGURE_CALL = re.compile(r"\b(?:show_figure|save_figure)\(")
# an error output (IPython's traceback, or the last line of one: "ValueError: …", "KeyboardInterrupt")
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^[\w.]*(?:Error|Exception|Interrupt)(?::|$)", re.MULTILINE)

# JupyterLab settings for the test (a temporary user-settings folder; the user's are not read):
# every cell in the DOM (no windowing), no news or update pop-up over the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}

# What the page shows once Run All has finished: the state of every cell, read from the DOM.
READ_CELLS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')]
  .map(cell => ({
    code: cell.classList.contains('jp-CodeCell'),
    prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
    stderr: [...cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
      .map(o => o.textContent),
    images: [...cell.querySelectorAll('.jp-OutputArea img')]
      .map(i => ({loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth})),
    tables: cell.querySelectorAll('.jp-RenderedMarkdown table, .jp-OutputArea table').length,
  }))"""

# True once Run All is over: the kernel is idle and no cell is queued or running ("[*]"). Run All
# queues every cell at once; a cell that fails unqueues the ones after it ("[ ]" again).
RUN_FINISHED = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return false;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  if (!indicator || indicator.getAttribute('data-status') !== 'idle') return false;
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
  return !prompts.some(t => t.includes('*')) && prompts.some(t => /\\[\\d+\\]/.test(t));
}"""

# True once the notebook's kernel is connected and idle (the status bar's "Python (nml) | Idle").
KERNEL_READY = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
  .some(e => /\\|\\s*Idle\\s*$/.test(e.textContent) && !e.textContent.startsWith('No Kernel'))"""

# True once Run All has taken effect: a cell is queued, running or done.
RUN_STARTED = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
  .some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"""

IMAGES = "() => [...document.images].map(i => ({src: i.src.slice(0, 80), loaded: i.complete && i.naturalWidth > 0}))"


MISSING_CHROMIUM = ("no `chromium` on PATH: run `make setup`, which installs the Debian package chromium (as root "
                    "or with non-interactive sudo), or `sudo apt-get install chromium`")
MISSING_PLAYWRIGHT = "the Python package playwright is missing: run `make setup` (it is in the dev extra)"


def _ready(browser):
    """The browser, or the test fails (not skips: `make setup` installs it) saying how to get it."""
    if isinstance(browser, str):
        pytest.fail(browser, pytrace=False)
    return browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


class Lab:
    """A running JupyterLab: where it serves, its token, its copy of the notebooks, its outputs."""

    def __init__(self, url: str, token: str, root: Path, out: Path, log: Path):
        self.url, self.token, self.root, self.out, self.log = url, token, root, out, log

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """End every session (and its kernel): one notebook's kernel at a time holds memory."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    root, out, settings = base / "notebooks", base / "out", base / "user-settings"
    shutil.copytree(NOTEBOOKS_DIR, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    # the user's Jupyter config, data (notebook trust database) and runtime folders are left alone;
    # the kernel `nml` is in this environment's prefix, which Jupyter searches anyway
    env.update(NML_PROFILE="smoke", NML_OUTPUT_DIR=str(out), JUPYTER_CONFIG_DIR=str(base / "config"),
               JUPYTER_DATA_DIR=str(base / "data"), JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    port, token = _free_port(), secrets.token_hex(16)
    log = base / "jupyterlab.log"
    cmd = [str(BIN / "jupyter"), "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={base / 'workspaces'}"]
    with open(log, "w") as log_file:
        server = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=base)
    running = Lab(f"http://127.0.0.1:{port}", token, root, out, log)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n{_tail(log)}", pytrace=False)
            try:
                running.api("GET", "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in {SERVER_TIMEOUT} s:\n{_tail(log)}", pytrace=False)
                time.sleep(0.5)
        yield running
    finally:
        server.terminate()  # jupyter_server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the Debian package's), or why there is none."""
    executable = shutil.which("chromium")
    if executable is None:
        yield MISSING_CHROMIUM
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        yield MISSING_PLAYWRIGHT
        return
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True)
        yield chromium
        chromium.close()


def _run_all(page, attempts: int = 3) -> None:
    """*Run → Run All Cells*; clicked again if no cell is queued within a few seconds (a click
    while the notebook panel is still settling can be lost)."""
    for attempt in range(1, attempts + 1):
        page.click('.lm-MenuBar-itemLabel:text-is("Run")')
        page.click('li[data-command="runmenu:run-all"]')
        try:
            page.wait_for_function(RUN_STARTED, timeout=10_000, polling=250)
            return
        except Exception:
            if attempt == attempts:
                raise
            page.keyboard.press("Escape")  # close the menu if it is still open


def _figure_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and FIGURE_CALL.search(c.source)]


def _findings_cells(nb: nbformat.NotebookNode) -> list[int]:
    """The ``## Findings`` heading's cell and the cells after it, up to the next heading of its level."""
    start = next((i for i, c in enumerate(nb.cells)
                  if c.cell_type == "markdown" and c.source.lstrip().startswith("## Findings")), None)
    if start is None:
        return []
    end = next((i for i in range(start + 1, len(nb.cells))
                if nb.cells[i].cell_type == "markdown" and re.match(r"#{1,2} ", nb.cells[i].source.lstrip())),
               len(nb.cells))
    return list(range(start, end))


def _problems(nb: nbformat.NotebookNode, cells: list[dict]) -> list[tuple[int, str]]:
    """What is wrong on the page, as (cell index, what); empty when the notebook ran cleanly."""
    problems = []
    for i, cell in enumerate(cells):
        errors = [text for text in cell["stderr"] if ERROR_TEXT.search(text)]
        if errors:
            problems.append((i, f"cell {i} shows an error:\n{errors[0][-1500:]}"))
    not_run = [i for i, cell in enumerate(cells) if cell["code"] and not re.search(r"\[\d+\]", cell["prompt"])]
    if not_run:
        problems.append((not_run[0], f"cells {not_run} did not run"))
    for i in _figure_cells(nb):
        images = cells[i]["images"]
        if not images:
            problems.append((i, f"figure cell {i} shows no image"))
        elif not all(image["loaded"] for image in images):
            problems.append((i, f"figure cell {i}: an image did not load ({images})"))
    findings = _findings_cells(nb)
    if not findings:
        problems.append((len(cells) - 1, "no `## Findings` markdown heading"))
    elif not any(cells[i]["tables"] for i in findings):
        problems.append((findings[0], f"the Findings section (cells {findings[0]}-{findings[-1]}) shows no table"))
    return sorted(problems, key=lambda problem: problem[0])


@pytest.mark.parametrize("notebook", [nb.path.name for nb in discover_notebooks(NOTEBOOKS_DIR)])
def test_notebook_runs_in_jupyterlab(browser, lab, notebook, tmp_path):
    browser = _ready(browser)
    nb = nbformat.read(lab.root / notebook, as_version=4)
    parameters = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    # without these, Run All would run the cpu profile and write into figures/cpu/
    assert "NML_PROFILE" in parameters and "NML_OUTPUT_DIR" in parameters, (
        f"{notebook}: its parameters cell must read NML_PROFILE and NML_OUTPUT_DIR from the environment")
    shot = tmp_path / f"{Path(notebook).stem}.png"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        # its own workspace, so that JupyterLab does not reopen the previous test's notebook
        page.goto(f"{lab.url}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?token={lab.token}")
        page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function(KERNEL_READY, timeout=120_000, polling=250)
        start = time.monotonic()
        _run_all(page)
        try:
            page.wait_for_function(RUN_FINISHED, timeout=NOTEBOOK_TIMEOUT * 1000, polling=500)
        except Exception as err:
            page.screenshot(path=shot)
            pytest.fail(f"{notebook}: Run All did not finish in {NOTEBOOK_TIMEOUT} s ({type(err).__name__}); "
                        f"screenshot {shot}; JupyterLab log {lab.log}", pytrace=False)
        seconds = time.monotonic() - start
        page.wait_for_timeout(500)  # the last outputs' images decode
        page.screenshot(path=shot)
        cells = page.evaluate(READ_CELLS)
        assert len(cells) == len(nb.cells), f"{notebook}: the page shows {len(cells)} cells, the file has {len(nb.cells)}"
        problems = _problems(nb, cells)
        if problems:
            first = problems[0][0]
            page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(first).scroll_into_view_if_needed()
            page.screenshot(path=tmp_path / f"{Path(notebook).stem}-cell{first}.png")
        assert not problems, (f"{notebook} in JupyterLab (Run All took {seconds:.0f} s; screenshots in {tmp_path}):\n"
                              + "\n".join(what for _, what in problems))
    finally:
        context.close()
        with contextlib.suppress(OSError):  # a server that died says so in its log, not here
            lab.shut_down_kernels()


def test_report_images_load_in_the_browser(browser, lab, tmp_path):
    """The report of what the notebooks wrote in JupyterLab (``nml report``); run alone, this test
    makes one with ``nml run --profile smoke --only 01`` (which writes its report at the end)."""
    browser = _ready(browser)
    if any(lab.out.glob("*.png")):
        folder, cmd = lab.out, ["report", "--figures-dir", str(lab.out)]
    else:
        folder = tmp_path / "run"
        cmd = ["run", "--profile", "smoke", "--only", "01", "--output-dir", str(folder)]
    proc = subprocess.run([str(BIN / "nml"), *cmd], capture_output=True, text=True, timeout=NOTEBOOK_TIMEOUT)
    report = folder / "report.html"
    assert proc.returncode == 0 and report.is_file(), (
        f"`nml {' '.join(cmd)}` exited {proc.returncode} without {report}:\n{proc.stderr[-3000:]}")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(report.as_uri(), wait_until="load")
        page.screenshot(path=tmp_path / "report.png", full_page=True)
        images = page.evaluate(IMAGES)
    finally:
        page.close()
    assert images, f"{report} has no image (screenshot {tmp_path / 'report.png'})"
    broken = [image["src"] for image in images if not image["loaded"]]
    assert not broken, f"{len(broken)} of {len(images)} images of {report} did not load: {broken[:5]}"
