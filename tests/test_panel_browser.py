"""The panel in a real browser: Debian's chromium, headless, driven by Playwright. Signs in
through the first-run link, reads the dashboard, searches calls, opens a call and plays its
recording, checks an XSS transcript stays inert, edits a dictionary. Screenshots of each
step are kept in tests/artifacts/panel/ (CI keeps that folder)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from appliance.web.app import WebServer
from paneldata import PASSWORD, Box

pytestmark = pytest.mark.slow
SHOTS = Path(__file__).parent / "artifacts" / "panel"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    box = Box(tmp_path)
    box.add_calls()
    box.settings.web.port = _port()
    server = WebServer(box.app, box.settings)
    server.start()
    yield box, server.url
    server.stop()
    box.close()


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(locale="ru-RU", viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.dialogs = []                                    # type: ignore[attr-defined]
        pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))  # type: ignore
        yield pg
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_supervisor_workflow_in_chromium(served, page):
    box, url = served
    token = box.app.extensions["setup"].ensure()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{url}/setup?token={token}")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    shot(page, "01-setup")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    assert "Сводка" in page.inner_text("h1")                 # Russian from the browser's locale
    assert page.locator(".alerts li").count() == 2           # complaint + low score
    shot(page, "02-dashboard-ru")

    page.click("a.lang >> text=EN")
    page.wait_for_load_state()
    assert "Dashboard" in page.inner_text("h1")
    shot(page, "03-dashboard-en")

    page.click("nav >> text=Calls")
    page.fill("input[name=q]", "доставк")
    page.click("#filters button[type=submit]")
    page.wait_for_load_state()
    rows = page.locator("table.calls tbody tr")
    assert rows.count() == 2
    shot(page, "04-calls-search")

    page.goto(f"{url}/calls/c-complaint")
    page.wait_for_selector("#wave[data-loaded='1']")
    # the hold is drawn over the agent's half: its colour where the agent's band has none
    hold_px = page.evaluate("""() => {
        const c = document.getElementById('wave'), ctx = c.getContext('2d');
        const x = Math.round(c.width * 8.5 / 12);
        return Array.from(ctx.getImageData(x, 5, 1, 1).data);
    }""")
    assert hold_px[3] > 0 and hold_px[0] > hold_px[2], hold_px     # amber: red over blue
    assert errors == []
    assert page.locator("#transcript mark.hit").first.inner_text().lower().startswith("жалоб")
    played = page.evaluate("""async () => {
        const a = document.getElementById('audio');
        a.currentTime = 3.0;
        await a.play();
        await new Promise(r => setTimeout(r, 1500));
        return {t: a.currentTime, paused: a.paused, err: a.error && a.error.code};
    }""")
    assert played["err"] is None and played["t"] > 3.2, played
    page.wait_for_selector("#transcript li.now")
    shot(page, "05-call-playing")
    assert any(e["action"] == "listen" and e["target"] == "c-complaint" for e in box.db.audit.recent(20))

    page.goto(f"{url}/calls/c-xss")
    page.wait_for_load_state("networkidle")
    assert page.title() != "pwned" and page.dialogs == []
    assert "<script>" in page.inner_text("#transcript")           # shown as text
    shot(page, "06-call-xss-inert")

    page.goto(f"{url}/dictionaries/ru/complaints")
    area = page.locator("textarea[name=entries]")
    area.fill(area.input_value() + "\nволокит* | severity=3")
    page.click("button[value=save]")
    page.wait_for_selector(".flash")
    shot(page, "07-dictionary-saved")
    saved = (box.settings.paths.data_dir / "dictionaries" / "ru" / "complaints.toml").read_text()
    assert '"волокит*", severity = 3' in saved.replace("{ phrase = ", "").replace(" }", "")
    page.locator("textarea[name=entries]").fill("волокита | colour=red")
    page.click("button[value=save]")
    assert "colour=red" in page.inner_text(".error")
    shot(page, "08-dictionary-invalid")

    page.goto(f"{url}/system")
    page.wait_for_function("document.getElementById('cpu').textContent.includes('%')")
    assert page.inner_text("#active_calls") == "1" and "test-model" in page.content()
    assert "79169990000" in page.inner_text("#calls-now") and "1:15" in page.inner_text("#calls-now")
    shot(page, "09-system")
    page.goto(f"{url}/settings")
    page.fill("input[name='retention.audio_days']", "120")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector(".flash")
    assert box.settings.retention.audio_days == 120
    shot(page, "10-settings-saved")
