"""The console page in a real browser (headless Chromium) against the real ``b2bua serve``
with SIPp phones: sign-in, a live call appearing and ending, its ladder, wrong credentials."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .browser import chromium, find_chromium
from .harness import B2buaServer, Sipp
from .test_calls_sipp import registered_phone
from .uapi import Uapi

WAIT = 20.0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    found = find_chromium()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"CI: {found}")
        pytest.skip(found)
    with chromium() as session:
        yield session


def wait_for(browser: Any, condition: Callable[[Any], Any], timeout: float = WAIT) -> Any:
    """``condition(browser)`` once truthy; elements replaced while it looks are looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        browser, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition)


def click(browser: Any, css: str) -> None:
    """Click the element ``css`` finds, again if the page replaced it meanwhile."""
    from selenium.webdriver.common.by import By

    def clicked(b: Any) -> bool:
        b.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait_for(browser, clicked)


def sign_in(browser: Any, server: B2buaServer, client_id: str, secret: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server.api_url}/console")
    wait_for(browser, lambda b: b.find_element(By.ID, "signin-form").is_displayed())
    browser.find_element(By.ID, "client-id").clear()
    browser.find_element(By.ID, "client-id").send_keys(client_id)
    browser.find_element(By.ID, "client-secret").send_keys(secret)
    browser.find_element(By.ID, "signin-button").click()


def test_wrong_credentials_are_refused_with_a_clear_message(
    browser: Any, b2bua_factory: Callable[..., B2buaServer]
) -> None:
    from selenium.webdriver.common.by import By

    server = b2bua_factory()
    sign_in(browser, server, "test-user-app", "not-the-secret")
    error = wait_for(
        browser,
        lambda b: (e := b.find_element(By.ID, "signin-error")).is_displayed() and e,
    )
    assert error.text == "Wrong client id or secret."
    assert not browser.find_element(By.ID, "console").is_displayed()
    assert browser.find_element(By.ID, "client-secret").get_attribute("value") == ""


def test_a_live_call_appears_ends_and_shows_its_ladder(
    browser: Any,
    gateway: Callable[..., Sipp],
    b2bua_factory: Callable[..., B2buaServer],
) -> None:
    from selenium.webdriver.common.by import By

    server = b2bua_factory()
    phone = registered_phone(gateway, server, "0003*210", "secret210")
    secret = "test-org-secret"
    sign_in(browser, server, "test-org-app", secret)
    wait_for(browser, lambda b: b.find_element(By.ID, "console").is_displayed())
    # the secret went into the token request only: not in the page, not in storage
    assert secret not in browser.page_source
    assert browser.find_element(By.ID, "client-secret").get_attribute("value") == ""
    stored = browser.execute_script(
        "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie"
    )
    assert secret not in stored
    # the registered phone is listed
    wait_for(
        browser,
        lambda b: (
            "0003*210" in b.find_element(By.ID, "devices").text
            and phone.address in b.find_element(By.ID, "devices").text
        ),
    )

    api = Uapi(server.api_url, "test-user-app", "test-user-secret")
    call_id = api.call_id(api.create(["0003*210"], ["0003*00"], query={"callDuration": 3}))
    row_css = f'#calls tr[data-call="{call_id}"]'

    def row_state(b: Any) -> str:
        rows = b.find_elements(By.CSS_SELECTOR, f"{row_css} td.state")
        return str(rows[0].text) if rows else ""

    # it appears live (before it ends), with its parties, and is counted
    assert wait_for(browser, lambda b: row_state(b) not in ("", "ended") and row_state(b))
    row_text = wait_for(browser, lambda b: b.find_element(By.CSS_SELECTOR, row_css).text)
    assert "0003*210" in row_text and "0003*00" in row_text
    assert wait_for(browser, lambda b: b.find_element(By.ID, "count-live").text == "1")
    click(browser, row_css)
    # ... and ends, without a reload
    wait_for(browser, lambda b: row_state(b) == "ended")
    wait_for(browser, lambda b: b.find_element(By.ID, "count-live").text == "0")
    api.wait_ended(call_id)

    def labels(b: Any) -> list[str]:
        """The arrows' labels as the page shows them: method or status, without the time."""
        return [
            e.text.rsplit("+", 1)[0].strip()
            for e in b.find_elements(By.CSS_SELECTOR, "#ladder .arrow .label")
        ]

    wait_for(browser, lambda b: "BYE" in labels(b) and labels(b).count("200 OK") >= 2)
    seen = wait_for(browser, labels)
    assert seen[0] == "INVITE"
    assert "200 OK" in seen and "ACK" in seen and "BYE" in seen
    # method and status are text in the page: the arrows' own labels
    assert (
        wait_for(
            browser,
            lambda b: [
                a.get_attribute("data-label")
                for a in b.find_elements(By.CSS_SELECTOR, "#ladder .arrow")
            ],
        )
        == seen
    )
    # click the INVITE: its whole message is shown
    click(browser, '#ladder .arrow[data-index="0"]')
    shown = wait_for(browser, lambda b: b.find_element(By.ID, "message").text)
    assert "INVITE sip:" in shown and f"{phone.address}" in shown
    # the timeline says how it went
    timeline = browser.find_element(By.ID, "timeline").text
    assert "created" in timeline and "ended" in timeline
    api.close()
