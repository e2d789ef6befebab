"""The dashboard path a person follows, in a real headless Chromium: `python run.py dashboard` starts a ZenML
server on this session's store with sign-in on (a generated password, printed once, kept 0600), a browser that
has not signed in is sent to the sign-in page, a signed-in one opens on the project's runs (not the first-run
form), a training run shows its steps and renders its model card, and the card and drift report files render on
their own. Screenshots go to reports/screenshots/."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from browser import assert_not_blank, browser_or_skip, chromium, screenshot, wait_for_text
from conftest import free_port_block, run_cli

pytestmark = pytest.mark.integration

MODEL = "dash_bike"
TRAINING_STEPS = ["ingest_data", "validate_data", "split_data", "train_model", "evaluate", "write_model_card"]


@pytest.fixture(scope="module")
def dashboard(bike_slice, data_dir):
    """A model trained and monitored on the bike slice, then the dashboard started on this session's store;
    stopped (and the client back on the local store) when the module ends."""
    browser_or_skip()  # no browser: skip before training anything
    # cnt = casual + registered: the two parts of the target are left out, as the demo's config does
    training_file = data_dir / "dash_train.csv"
    pd.read_csv(bike_slice).drop(columns=["casual", "registered"]).to_csv(training_file, index=False)
    train = ("train", "--data", str(training_file), "--target", "cnt", "--model-name", MODEL, "--no-redeploy")
    trained = run_cli(*train, unset=("ZENML_LOGGING_VERBOSITY",))  # the output a user sees by default
    assert trained.returncode == 0, trained.stderr[-3000:]
    console = re.sub(r"\x1b\[[0-9;]*m", "", trained.stdout + trained.stderr)  # plain text either way
    steps = re.findall(r"^\s+✓ (\w+)\s+\((?:(?:\d+m)?[\d.]+s|cached)\)$", console, flags=re.MULTILINE)
    assert steps[:1] == ["ingest_data"] and steps[-1:] == ["write_model_card"], console[:3000]
    assert len(steps) == len(set(steps)) == 8 and "\x1b[" not in trained.stdout  # no colour codes in a pipe
    assert "has finished in" not in console and "ZenML Pro" not in console, console[:3000]
    batch = data_dir / "dash_batch.csv"
    pd.read_csv(bike_slice).tail(300).to_csv(batch, index=False)
    monitored = run_cli("monitor", "--batch", str(batch), "--model-name", MODEL, "--retrain", "never")
    assert monitored.returncode == 0, monitored.stderr[-3000:]
    port = free_port_block()
    started = run_cli("dashboard", "--model-name", MODEL, "--port", str(port), timeout=300)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-3000:]
        yield started.stdout, f"http://127.0.0.1:{port}"
    finally:
        stopped = run_cli("dashboard", "--stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]


def printed(output: str, what: str) -> str:
    """The address printed on the line that starts with `what:`."""
    found = re.search(rf"^\s*{re.escape(what)}: (\S+)", output, flags=re.MULTILINE)
    assert found, f"`{what}` is not in the dashboard's output:\n{output}"
    return found.group(1)


def password_printed(output: str) -> tuple[str, Path]:
    """The password the first start printed, and the file that keeps it."""
    found = re.search(r"sign in as `default`; password (\S+), generated now and shown this once; kept in (\S+)", output)
    assert found, output
    return found.group(1), Path(found.group(2))


def sign_in(driver, url: str, password: str) -> None:
    """What the dashboard's sign-in form does, done for it: the session cookie from ZenML's own password login
    (POST /api/v1/login, as the form posts it) and the page's signed-in flag. The form itself keeps headless
    Chromium's renderer busy (input events and scripts time out there), so it is not typed into."""
    answer = requests.post(f"{url}/api/v1/login", data={"username": "default", "password": password}, timeout=30)
    assert answer.status_code == 200, answer.text
    driver.get(f"{url}/health")  # a page of the server's origin that runs no dashboard script
    driver.execute_script("window.localStorage.setItem('isAuthenticated', 'true')")
    for cookie in answer.cookies:
        driver.execute_cdp_cmd(
            "Network.setCookie", {"name": cookie.name, "value": cookie.value, "url": f"{url}/", "httpOnly": True}
        )


def test_the_dashboard_asks_for_the_generated_password(dashboard):
    output, url = dashboard
    password, kept = password_printed(output)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and password in kept.read_text()
    assert requests.get(f"{url}/api/v1/current-user", timeout=10).status_code == 401
    wrong = requests.post(f"{url}/api/v1/login", data={"username": "default", "password": "x" + password}, timeout=30)
    assert wrong.status_code == 401
    right = requests.post(f"{url}/api/v1/login", data={"username": "default", "password": password}, timeout=30)
    assert right.status_code == 200
    # cross-origin requests are answered for the server's own address only
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    foreign = requests.options(f"{url}/api/v1/current-user", headers={"Origin": "http://evil.example", **preflight})
    own = requests.options(f"{url}/api/v1/current-user", headers={"Origin": url, **preflight})
    assert foreign.headers.get("access-control-allow-origin") is None, foreign.headers
    assert own.headers.get("access-control-allow-origin") == url, own.headers
    again = run_cli("dashboard", "--model-name", MODEL, "--port", url.rsplit(":", 1)[1], timeout=300)
    assert again.returncode == 0 and password not in again.stdout, again.stdout  # shown once only
    assert f"the password is in {kept}" in again.stdout
    with chromium() as driver:
        driver.get(url)
        wait_for_text(driver, "Log in to your account")  # its renderer then stays too busy for a screenshot
        assert "/login" in driver.current_url


def click(driver, element) -> None:
    """A click as a person makes it; through the page's script when an overlay or animation is in the way."""
    from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException

    try:
        element.click()
    except (ElementClickInterceptedException, ElementNotInteractableException):
        driver.execute_script("arguments[0].click();", element)


def open_artifact_preview(driver, artifact: str) -> None:
    """In a run's graph, open an artifact's side panel on its Visualization tab (and load an HTML preview)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).send_keys(Keys.ESCAPE).perform()  # close a side panel left open
    deadline = time.monotonic() + 30
    while not driver.find_elements(By.XPATH, f"//p[normalize-space()='{artifact}']"):
        assert time.monotonic() < deadline, f"no `{artifact}` node in {driver.current_url}"
        time.sleep(0.3)
    node = driver.find_elements(By.XPATH, f"//p[normalize-space()='{artifact}']")[-1]
    click(driver, node)
    tab = "//*[@role='tab'][normalize-space()='Visualization']"
    deadline = time.monotonic() + 20
    while len(driver.find_elements(By.XPATH, tab)) < 2:  # the run's own tab, then the panel's
        assert time.monotonic() < deadline, f"`{artifact}`'s panel has no Visualization tab"
        time.sleep(0.3)
    click(driver, driver.find_elements(By.XPATH, tab)[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        load = driver.find_elements(By.XPATH, "//button[normalize-space()='Load Preview']")
        if load:
            click(driver, load[0])
            return
        time.sleep(0.3)


def test_dashboard_opens_on_the_project_with_the_run_and_its_model_card(dashboard):
    output, url = dashboard
    from selenium.webdriver.common.by import By

    runs = printed(output, "this project's runs")
    training = printed(output, f"training run of `{MODEL}` version 1")
    assert runs.startswith(url) and training.startswith(url)
    with chromium() as driver:
        sign_in(driver, url, password_printed(output)[0])
        driver.get(url)
        wait_for_text(driver, "Welcome back")  # the overview, not the first-run account form
        assert "/survey" not in driver.current_url and "/login" not in driver.current_url
        driver.get(runs)
        wait_for_text(driver, "training_pipeline", "monitoring_pipeline")
        assert_not_blank(screenshot(driver, "dashboard-runs"))

        driver.get(training)
        wait_for_text(driver, *TRAINING_STEPS, "model_card", "data_quality_report")
        open_artifact_preview(driver, "data_quality_report")
        wait_for_text(driver, "rows_in", "rows_out")
        open_artifact_preview(driver, "model_card")
        deadline, again = time.monotonic() + 60, time.monotonic() + 20
        while not driver.find_elements(By.TAG_NAME, "iframe"):
            assert time.monotonic() < deadline, "the model card's preview never loaded"
            if time.monotonic() > again:  # on a busy machine the first click can land before the panel listens
                open_artifact_preview(driver, "model_card")
                again = time.monotonic() + 20
            time.sleep(0.3)
        shot = screenshot(driver, "dashboard-model-card")
        driver.switch_to.frame(driver.find_elements(By.TAG_NAME, "iframe")[-1])
        card = wait_for_text(driver, f"Model card: {MODEL} version 1", "Promotion", "Monitoring")
        assert "promoted to production" in card
        driver.switch_to.default_content()
        assert_not_blank(shot)


def test_the_printed_files_render_the_model_card_and_the_drift_report(dashboard):
    output, _ = dashboard
    from selenium.webdriver.common.by import By

    card = next(f for f in re.findall(r"the same page as a file: (file://\S+)", output) if "/models/" in f)
    drift = printed(output, "its drift report")
    assert drift.startswith("file://") and "/monitoring/" in drift
    with chromium(width=1200) as driver:
        driver.get(card)
        text = wait_for_text(driver, f"Model card: {MODEL} version 1", "Data", "Split", "Metrics", "Monitoring")
        assert "drift share per monitoring run" in driver.page_source  # the drift history chart (SVG)
        assert len(driver.find_elements(By.TAG_NAME, "svg")) >= 2 and "sha256" in text
        assert_not_blank(screenshot(driver, "model-card", full_page=True))

        driver.get(drift)
        wait_for_text(driver, f"Monitoring `{MODEL}` version 1", "Dataset Drift", "Data Drift Summary", timeout=60)
        assert_not_blank(screenshot(driver, "drift-report"))


def test_card_prints_every_version_and_says_which_exist(dashboard):
    shown = run_cli("card", "--model-name", MODEL)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.startswith(f"# Model card: {MODEL} version 1") and "## Monitoring" in shown.stdout
    missing = run_cli("card", "--model-name", MODEL, "--version", "9")
    assert missing.returncode != 0 and "has no version 9" in missing.stderr and "(its versions: 1)" in missing.stderr
