"""What only a real browser can show (Debian's Chromium via Playwright): the page's own cookie requests
pass the cross-origin check (browsers decide which Origin they send), log-out ends the session, and
/docs renders every operation from local files under the CSP without one violation."""

from __future__ import annotations

from pathlib import Path

from test_dashboard_in_a_browser import browser  # noqa: F401 - the browser fixture

from citywatch.config import CitywatchConfig, parse_config
from server.runner import serve_in_thread


def _config(tmp_path: Path) -> CitywatchConfig:
    return parse_config({"server": {"database_url": f"sqlite:///{tmp_path}/cw.sqlite"}})


CSP_VIOLATIONS = (
    "window.__csp = []; document.addEventListener('securitypolicyviolation',"
    " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def test_the_pages_own_cookie_requests_pass_the_origin_check_and_log_out_ends_the_session(
    tmp_path: Path,
    browser,  # noqa: F811
) -> None:
    with serve_in_thread(_config(tmp_path), ingest=False, api_keys="admin:admin-key-123") as server:
        page = browser.new_page()
        page.goto(f"{server.url}/")
        got = page.evaluate(
            """async () => {
              const o = {credentials: "same-origin", headers: {"Content-Type": "application/json"}};
              const post = (path, body) => fetch(path, {...o, method: "POST", body: JSON.stringify(body)});
              const out = {};
              out.login = (await post("/api/v1/session", {key: "admin-key-123"})).status;
              out.add_key = (await post("/api/v1/keys", {role: "planner", name: "from the page"})).status;
              out.logout = (await fetch("/api/v1/session", {...o, method: "DELETE"})).status;
              out.after = (await fetch("/api/v1/keys", o)).status;
              return out;
            }"""
        )
        page.close()
    assert got == {"login": 200, "add_key": 201, "logout": 204, "after": 401}


def test_docs_render_every_operation_offline_under_the_csp(tmp_path: Path, browser) -> None:  # noqa: F811
    with serve_in_thread(_config(tmp_path), ingest=False, api_keys="admin:admin-key-123") as server:
        page = browser.new_page()
        page.add_init_script(CSP_VIOLATIONS)
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server.url) else None)
        page.goto(f"{server.url}/docs")
        page.wait_for_selector(".opblock", timeout=20000)
        operations = page.locator(".opblock").count()
        violations = page.evaluate("window.__csp")
        page.close()
    assert operations >= 20 and violations == [] and outside == [], (operations, violations, outside)
