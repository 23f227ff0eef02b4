"""Screenshots of the operators' console for the docs (``docs/img/console-*.png``).

Starts the real ``b2bua serve`` (free ports, a temporary folder), a SIPp phone registered as
extension ``0003*210`` that answers and echoes RTP, places a click-to-call from that phone to
sandbox ``0003*00`` and a few sandbox calls that ring on, signs in to ``/console`` in headless
Chromium as an Organization App, opens the phone's call, clicks its INVITE, and saves:

- ``docs/img/console-calls.png``: the whole page (counters, calls, the call's timeline and
  SIP ladder with the INVITE shown, devices);
- ``docs/img/console-signin-error.png``: the sign-in form after wrong credentials.

Needs ``sipp``, ``chromium`` and ``chromium-driver`` (what ``.ci/run`` installs). Run from the
repository root: ``.venv/bin/python scripts/console_screenshots.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.browser import chromium  # noqa: E402
from tests.integration.harness import DEFAULT_DIRECTORY, B2buaServer, Sipp  # noqa: E402
from tests.integration.uapi import Uapi  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="console-shots-") as tmp:
        work = Path(tmp)
        server = B2buaServer(work, directory=DEFAULT_DIRECTORY)
        server.start()
        phone = Sipp(
            "phone_register.xml",
            work,
            remote=server.sip_address,
            service="0003*210",
            auth=("0003*210", "secret210"),
            ooc_scenario="phone_answer.xml",
            rtp_echo=True,
            pause_ms=120_000,
            timeout=180,
        ).start()
        try:
            phone.wait_for_message(200, timeout=10)
            user = Uapi(server.api_url, "test-user-app", "test-user-secret")
            org = Uapi(server.api_url, "test-org-app", "test-org-secret")
            call_id = user.call_id(
                user.create(["0003*210"], ["0003*00"], query={"callDuration": 3})
            )
            for destination in ("0003*08", "0003*08", "0003*09"):
                user.create(["0003*02"], [destination], query={"callDuration": 60})
            org.create(
                ["0003*01"], ["0003*08"], user="13", extension="211", query={"callDuration": 60}
            )
            user.wait_ended(call_id, timeout=20)
            time.sleep(1.5)  # the BYE's 200 OK
            with chromium(width=1500, height=1300) as browser:
                wait = WebDriverWait(browser, 20, poll_frequency=0.1)
                browser.get(f"{server.api_url}/console")
                browser.find_element(By.ID, "client-id").send_keys("test-org-app")
                browser.find_element(By.ID, "client-secret").send_keys("wrong")
                browser.find_element(By.ID, "signin-button").click()
                wait.until(lambda b: b.find_element(By.ID, "signin-error").is_displayed())
                browser.set_window_size(800, 330)
                browser.save_screenshot(str(args.out / "console-signin-error.png"))
                browser.set_window_size(1500, 1300)
                browser.find_element(By.ID, "client-id").clear()
                browser.find_element(By.ID, "client-id").send_keys("test-org-app")
                browser.find_element(By.ID, "client-secret").send_keys("test-org-secret")
                browser.find_element(By.ID, "signin-button").click()
                row = f'#calls tr[data-call="{call_id}"]'
                wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, row))
                wait.until(lambda b: "0003*210" in b.find_element(By.ID, "devices").text)
                browser.find_element(By.CSS_SELECTOR, row).click()
                wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#ladder .arrow")) >= 6)
                time.sleep(1.2)  # one more poll: the ladder is complete and stable
                browser.find_element(By.CSS_SELECTOR, '#ladder .arrow[data-index="0"]').click()
                wait.until(lambda b: b.find_element(By.ID, "message").text)
                for _ in range(2):  # the whole page in the window (the window's frame aside)
                    height = browser.execute_script("return document.documentElement.scrollHeight")
                    inner = browser.execute_script("return window.innerHeight")
                    size = browser.get_window_size()
                    browser.set_window_size(1500, size["height"] + int(height) - int(inner) + 8)
                    time.sleep(0.3)
                browser.save_screenshot(str(args.out / "console-calls.png"))
            user.close()
            org.close()
        finally:
            phone.kill()
            server.stop()
    for name in ("console-calls.png", "console-signin-error.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
