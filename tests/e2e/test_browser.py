"""The search page in a real headless Chromium against a real `searchd serve`.

Each test does what a person would: type, pick a mode, upload, open a preview, page on, share
a link, and meet the error states. Screenshots of every state land in test-output/screenshots/.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import COFFEE, ServerProcess
from tests.e2e.conftest import DESKTOP, open_page

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
BLUE_SQUARE = REPO / "sample_data" / "images" / "shapes" / "blue-square-1.png"
CARD = "[data-testid=result-card]"


def results_for(page: Page, mode: str):
    """The result grid once it shows a finished search in MODE."""
    grid = page.locator(f"[data-testid=results][data-mode={mode}][aria-busy=false]")
    expect(grid).to_have_count(1)
    expect(grid.locator(CARD).first).to_be_visible()
    return grid.locator(CARD)


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def test_text_to_image_search_puts_a_red_circle_first(desktop_page: Page, browser_server, screenshot):
    page = desktop_page
    page.goto(browser_server + "/")
    expect(page.get_by_test_id("state-idle")).to_be_visible()
    expect(page.get_by_test_id("footer-counts")).to_contain_text("54 images")
    screenshot(page, "desktop-idle")

    page.get_by_test_id("mode-images").click()
    expect(page.get_by_test_id("mode-images")).to_have_attribute("aria-checked", "true")
    page.get_by_test_id("search-input").fill("a red circle")  # no Enter: the pause searches
    cards = results_for(page, "text-image")

    assert query_of(page) == {"q": ["a red circle"], "mode": ["text-image"]}
    assert all(kind == "image" for kind in cards.evaluate_all("els => els.map(e => e.dataset.kind)"))
    first = cards.first
    assert "red-circle" in first.get_attribute("data-path")
    expect(first.locator("img")).to_have_attribute("alt", re.compile(r"\.(png|jpe?g)$"))
    expect(page.get_by_test_id("result-count")).to_contain_text("images")
    # the two red circles clear the relevance floor; the other shapes wait behind a button
    assert sorted(cards.evaluate_all("els => els.map(e => e.dataset.path.split('/').pop())")) == [
        "red-circle-1.png", "red-circle-2.png"]
    expect(page.get_by_test_id("show-weak")).to_have_text(re.compile(r"^Show weaker matches \(\d+\)$"))
    expect(page.get_by_test_id("load-more")).to_be_hidden()
    expect(page.get_by_test_id("answer-panel")).to_be_hidden()  # no LLM configured
    screenshot(page, "desktop-images")


def test_text_mode_finds_whisper_with_marked_terms(desktop_page: Page, browser_server, screenshot):
    page = desktop_page
    page.goto(browser_server + "/")
    expect(page.get_by_test_id("state-idle")).to_be_visible()
    page.get_by_test_id("mode-text").click()
    page.keyboard.press("/")  # the shortcut focuses the search box
    expect(page.get_by_test_id("search-input")).to_be_focused()
    page.keyboard.type("turning spoken audio into written words")
    page.keyboard.press("Enter")
    cards = results_for(page, "text-text")

    first = cards.first
    assert first.get_attribute("data-kind") == "text"
    assert first.get_attribute("data-path").endswith("whisper.md")
    snippet = first.get_by_test_id("result-snippet")
    expect(snippet.locator("mark").first).to_be_visible()
    assert snippet.locator("*:not(mark)").count() == 0  # nothing but <mark> comes out of a snippet
    score = first.get_by_test_id("result-score")  # a relevance percentage with a bar, not a raw cosine
    expect(score).to_have_text(re.compile(r"^\d{1,3}%$"))
    assert 0 <= float(score.get_attribute("data-relevance")) <= 1
    assert query_of(page)["mode"] == ["text-text"]
    screenshot(page, "desktop-text")


def test_search_by_uploaded_image_finds_blue_squares(desktop_page: Page, browser_server, screenshot):
    page = desktop_page
    page.goto(browser_server + "/")
    expect(page.get_by_test_id("state-idle")).to_be_visible()
    page.get_by_test_id("upload-input").set_input_files(str(BLUE_SQUARE))
    cards = results_for(page, "image-image")

    expect(page.get_by_test_id("query-chip")).to_contain_text("blue-square-1.png")
    expect(page.get_by_test_id("mode-images")).to_have_text("Similar images")
    expect(page.get_by_test_id("mode-images")).to_have_attribute("aria-checked", "true")
    paths = cards.evaluate_all("els => els.slice(0, 3).map(e => e.dataset.path)")
    assert paths[0].endswith("blue-square-1.png"), paths
    assert sum("blue-square" in p for p in paths) >= 2, paths
    screenshot(page, "desktop-upload")

    page.get_by_test_id("mode-text").click()  # "Related text" for the same image
    cards = results_for(page, "image-text")
    assert set(cards.evaluate_all("els => els.map(e => e.dataset.kind)")) == {"text"}

    # Dropping an image anywhere on the page searches with it too.
    page.get_by_test_id("mode-images").click()
    cards = results_for(page, "image-image")
    page.evaluate("""async (url) => {
        const blob = await (await fetch(url)).blob();
        const dt = new DataTransfer();
        dt.items.add(new File([blob], 'dropped.webp', {type: blob.type}));
        window.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, cancelable: true}));
        window.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, cancelable: true}));
    }""", cards.first.locator("img").get_attribute("src"))
    expect(page.get_by_test_id("query-chip")).to_contain_text("dropped.webp")
    expect(page.get_by_test_id("dropzone")).to_be_hidden()
    cards = results_for(page, "image-image")

    # ...and so does pasting one.
    page.evaluate("""async (url) => {
        const blob = await (await fetch(url)).blob();
        const dt = new DataTransfer();
        dt.items.add(new File([blob], 'pasted.webp', {type: blob.type}));
        document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
    }""", cards.nth(1).locator("img").get_attribute("src"))
    expect(page.get_by_test_id("query-chip")).to_contain_text("pasted.webp")
    results_for(page, "image-image")


def test_photo_preview_shows_exif_date_camera_and_place(desktop_page: Page, browser_server, screenshot):
    page = desktop_page
    page.goto(browser_server + "/")
    expect(page.get_by_test_id("state-idle")).to_be_visible()
    page.get_by_test_id("upload-input").set_input_files(str(COFFEE))
    cards = results_for(page, "image-image")
    first = cards.first
    assert first.get_attribute("data-path").endswith("photos/coffee.jpg")  # the same picture scores 1.0
    first.click()
    dialog = page.get_by_test_id("preview-dialog")
    expect(dialog.get_by_test_id("meta-dimensions")).to_have_text("600 × 400 px")
    expect(dialog.get_by_test_id("meta-taken")).to_contain_text("2013")
    expect(dialog.get_by_test_id("meta-camera")).to_contain_text("EOS 5D Mark III")
    expect(dialog.get_by_test_id("meta-gps")).to_contain_text("44.95030° N")
    expect(dialog.get_by_test_id("preview-image")).to_have_attribute("alt", "Preview of coffee.jpg")
    screenshot(page, "desktop-preview-photo")


def test_preview_escape_and_find_similar(desktop_page: Page, browser_server, screenshot):
    page = desktop_page
    page.goto(browser_server + "/?q=a+red+circle&mode=text-image")
    cards = results_for(page, "text-image")
    first_id = cards.first.get_attribute("data-id")
    cards.first.click()

    dialog = page.get_by_test_id("preview-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("preview-image")).to_be_visible()
    expect(dialog.get_by_test_id("meta-dimensions")).to_contain_text("×")
    expect(dialog.get_by_test_id("meta-path")).to_contain_text(cards.first.get_attribute("data-path"))
    expect(dialog.get_by_test_id("meta-modified")).not_to_be_empty()
    expect(dialog.get_by_test_id("open-original")).to_have_attribute("href", f"/api/items/{first_id}/file")
    screenshot(page, "desktop-preview")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    cards.first.click()
    expect(dialog).to_be_visible()
    page.keyboard.press("ArrowRight")  # browse to the next result without closing
    expect(dialog).to_have_attribute("data-id", cards.nth(1).get_attribute("data-id"))
    page.keyboard.press("ArrowLeft")
    expect(dialog).to_have_attribute("data-id", first_id)
    page.get_by_test_id("find-similar").click()
    expect(dialog).to_be_hidden()
    similar = results_for(page, "image-image")
    assert query_of(page) == {"similar": [first_id], "mode": ["image-image"]}
    expect(page.get_by_test_id("query-chip")).to_contain_text("Similar to")
    ids = similar.evaluate_all("els => els.map(e => e.dataset.id)")
    assert first_id not in ids
    top = similar.evaluate_all("els => els.slice(0, 3).map(e => e.dataset.path)")
    assert any("red-circle" in p for p in top), top
    screenshot(page, "desktop-similar")

    page.go_back()  # back to the text search, as it was
    cards = results_for(page, "text-image")
    expect(page.get_by_test_id("search-input")).to_have_value("a red circle")
    expect(cards.first).to_have_attribute("data-id", first_id)


def test_load_more_appends_without_losing_results(desktop_page: Page, browser_server, screenshot):
    page = desktop_page
    # weak=1: every document, the weak ones too, so that there are pages to load
    page.goto(browser_server + "/?q=a+red+circle&mode=text-all&k=30&weak=1")
    cards = results_for(page, "text-all")
    expect(cards).to_have_count(30)
    before = cards.evaluate_all("els => els.map(e => e.dataset.id)")
    kinds = set(cards.evaluate_all("els => els.map(e => e.dataset.kind)"))
    assert kinds == {"image", "text"}

    load_more = page.get_by_test_id("load-more")
    load_more.click()
    expect(cards).to_have_count(60)
    after = cards.evaluate_all("els => els.map(e => e.dataset.id)")
    assert after[:30] == before
    assert len(set(after)) == 60
    assert "&k=30" in page.url and "weak=1" in page.url and "offset" not in page.url
    screenshot(page, "desktop-load-more", full_page=True)

    grid = page.get_by_test_id("results")
    all_cards = grid.locator(CARD)
    for _ in range(5):  # the sample data has 99 documents: the button goes once all are shown
        if not load_more.is_visible():
            break
        count = all_cards.count()
        load_more.click()  # marks the grid busy at once; it is idle again when the page is in
        expect(grid).to_have_attribute("aria-busy", "false")
        assert all_cards.count() > count
    expect(load_more).to_be_hidden()
    ids = all_cards.evaluate_all("els => els.map(e => e.dataset.id)")
    assert len(ids) == len(set(ids)) <= 99


def test_shared_url_reproduces_the_search_on_reload(desktop_page: Page, browser_server):
    page = desktop_page
    page.goto(browser_server + "/?q=a+red+circle&mode=text-image")
    cards = results_for(page, "text-image")
    first = cards.first.get_attribute("data-path")
    expect(page.get_by_test_id("search-input")).to_have_value("a red circle")
    expect(page.get_by_test_id("mode-images")).to_have_attribute("aria-checked", "true")
    expect(page).to_have_title(re.compile("a red circle"))

    page.reload()
    cards = results_for(page, "text-image")
    assert cards.first.get_attribute("data-path") == first
    expect(page.get_by_test_id("search-input")).to_have_value("a red circle")


def test_empty_index_shows_how_to_index(desktop_page: Page, empty_server, screenshot):
    page = desktop_page
    page.goto(empty_server + "/")
    state = page.get_by_test_id("state-empty-index")
    expect(state).to_be_visible()
    expect(state.get_by_test_id("index-command")).to_have_text("searchd index PATH")
    screenshot(page, "empty-index")

    page.goto(empty_server + "/?q=anything&mode=text-all")  # a search there says the same
    expect(page.get_by_test_id("state-empty-index")).to_be_visible()
    expect(page.locator(CARD)).to_have_count(0)


def test_upload_that_is_not_an_image_shows_the_server_message(desktop_page: Page, browser_server, tmp_path,
                                                               screenshot):
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a PNG\n")
    page = desktop_page
    page.goto(browser_server + "/")
    expect(page.get_by_test_id("state-idle")).to_be_visible()
    with page.expect_response(lambda r: "/api/search/image" in r.url) as response_info:
        page.get_by_test_id("upload-input").set_input_files(str(fake))
    response = response_info.value
    assert response.status == 415
    server_message = response.json()["error"]

    state = page.get_by_test_id("state-error")
    expect(state).to_be_visible()
    expect(state.get_by_test_id("error-message")).to_have_text(server_message)
    expect(page.locator(CARD)).to_have_count(0)
    screenshot(page, "upload-refused")


def test_server_unreachable_then_retry(desktop_page: Page, browser_server, screenshot):
    page = desktop_page
    page.goto(browser_server + "/")
    expect(page.get_by_test_id("state-idle")).to_be_visible()
    page.route("**/api/search?**", lambda route: route.abort("connectionrefused"))
    page.get_by_test_id("search-input").fill("a red circle")
    page.keyboard.press("Enter")
    state = page.get_by_test_id("state-error")
    expect(state).to_be_visible()
    expect(state).to_contain_text("reach")
    screenshot(page, "server-unreachable")

    page.unroute("**/api/search?**")
    state.get_by_test_id("retry").click()
    results_for(page, "text-all")
    expect(page.get_by_test_id("state-error")).to_have_count(0)


def test_no_results_state(desktop_page: Page, browser_server, screenshot):
    page = desktop_page
    empty = {"query": "zzz", "mode": "text-text", "took_ms": 1.0, "hits": [], "next_offset": None}
    page.route("**/api/search?**", lambda route: route.fulfill(json=empty))
    page.goto(browser_server + "/?q=zzz&mode=text-text")
    expect(page.get_by_test_id("state-no-results")).to_be_visible()
    expect(page.get_by_test_id("result-count")).to_have_text("No results")
    expect(page.get_by_test_id("load-more")).to_be_hidden()
    screenshot(page, "no-results")


def test_snippets_keep_only_mark_tags(desktop_page: Page, browser_server):
    page = desktop_page
    hostile = ('<img src=x onerror="window.__pwned=1"><b>bold</b> &lt;script&gt; '
               '<mark>circle</mark> &amp; <a href="javascript:window.__pwned=1">link</a>')
    hit = {"id": 999001, "kind": "text", "path": "/data/notes/evil.md", "score": 0.5, "snippet": hostile,
           "thumbnail_url": None, "file_url": "/api/items/999001/file", "metadata": {"title": "<i>evil</i>"}}
    body = {"query": "circle", "mode": "text-text", "took_ms": 1.0, "hits": [hit], "next_offset": None}
    page.route("**/api/search?**", lambda route: route.fulfill(json=body))
    page.goto(browser_server + "/?q=circle&mode=text-text")
    card = results_for(page, "text-text").first
    snippet = card.get_by_test_id("result-snippet")
    assert snippet.evaluate("e => [...e.querySelectorAll('*')].map(c => c.tagName)") == ["MARK"]
    expect(snippet).to_contain_text("<script> circle & ")
    expect(card.locator(".card__title")).to_have_text("<i>evil</i>")
    assert page.evaluate("window.__pwned") is None


def test_answer_panel_streams_tokens_and_links_citations(desktop_page: Page, browser_server, screenshot):
    """The LLM is someone else's service: /api/status and /api/answer are stood in for here."""
    page = desktop_page

    def status(route):
        real = route.fetch().json()
        real["llm"] = {"model": "stand-in-llm", "vision": False}
        route.fulfill(json=real)

    requests: list[dict] = []

    def answer(route):
        requests.append(json.loads(route.request.post_data))
        cards = page_cards["ids"]
        events = [
            ("citations", {"citations": [{"n": 1, "id": int(cards[0]), "path": cards_path["first"], "kind": "text"},
                                         {"n": 2, "id": 123456789, "path": "/elsewhere/other.md", "kind": "text"}]}),
            ("token", {"text": "Whisper turns speech "}),
            ("token", {"text": "into text [1]. See also [2] <b>and</b> [9]."}),
            ("done", {"model": "stand-in-llm", "took_ms": 1234}),
        ]
        sse = "".join(f"event: {name}\r\ndata: {json.dumps(data)}\r\n\r\n" for name, data in events)
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=sse)

    page_cards: dict = {}
    cards_path: dict = {}
    page.route("**/api/status", status)
    page.route("**/api/answer", answer)
    page.goto(browser_server + "/")
    expect(page.get_by_test_id("state-idle")).to_be_visible()
    page.get_by_test_id("mode-text").click()
    page.get_by_test_id("search-input").fill("turning spoken audio into written words")
    cards = results_for(page, "text-text")
    page_cards["ids"] = cards.evaluate_all("els => els.map(e => e.dataset.id)")
    cards_path["first"] = cards.first.get_attribute("data-path")
    panel = page.get_by_test_id("answer-panel")
    expect(panel).to_be_visible()  # offered after a pause, written only on Enter
    assert requests == []
    page.get_by_test_id("search-input").press("Enter")

    body = panel.get_by_test_id("answer-text")
    expect(body).to_have_text("Whisper turns speech into text [1]. See also [2] <b>and</b> [9].")
    expect(panel.get_by_test_id("answer-meta")).to_have_text("stand-in-llm · 1.2 s")
    assert requests == [{"q": "turning spoken audio into written words", "mode": "text-all", "k": 8, "stream": True}]
    cites = body.get_by_test_id("answer-cite")
    expect(cites).to_have_count(2)  # [9] was never cited: it stays text
    screenshot(page, "answer-panel")

    cites.first.click()  # a cited hit on the page: focus moves to its card
    expect(cards.first.locator(".card__open")).to_be_focused()
    page.route("**/api/items/123456789", lambda route: route.fulfill(
        status=200, json={"id": 123456789, "kind": "text", "path": "/elsewhere/other.md", "title": "Other",
                          "text": "Another passage.", "thumbnail_url": None, "file_url": "/api/items/123456789/file",
                          "similar_url": "/api/items/123456789/similar", "metadata": {"size": 10}}))
    cites.nth(1).click()  # not on the page: its preview opens
    dialog = page.get_by_test_id("preview-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("preview-text")).to_have_text("Another passage.")


def test_answer_panel_against_the_real_answer_endpoint(desktop_page: Page, llm_server, fake_llm, screenshot):
    """/api/answer for real, with an OpenAI-compatible stand-in for the LLM behind it."""
    fake_llm.script("answer", text="Whisper transcribes recorded speech into text [1]. "
                                   "It was trained on weakly supervised audio [2].", delay=0.01)
    page = desktop_page
    page.goto(llm_server + "/?q=turning+spoken+audio+into+written+words&mode=text-text")
    results_for(page, "text-text")
    panel = page.get_by_test_id("answer-panel")
    expect(panel).to_be_visible()
    body = panel.get_by_test_id("answer-text")
    expect(body).to_have_text("Whisper transcribes recorded speech into text [1]. "
                              "It was trained on weakly supervised audio [2].")
    expect(panel.get_by_test_id("answer-meta")).to_contain_text("fake-model")
    cites = body.get_by_test_id("answer-cite")
    expect(cites).to_have_count(2)
    expect(panel.get_by_test_id("answer-citations").locator("li")).to_have_count(2)
    screenshot(page, "answer-panel-live")

    cited = cites.first.get_attribute("data-id")
    cites.first.click()
    if page.locator(f"#result-{cited}").count():
        expect(page.locator(f"#result-{cited} .card__open")).to_be_focused()
    else:
        expect(page.get_by_test_id("preview-dialog")).to_have_attribute("data-id", cited)


def test_phone_width_layout(phone_page: Page, browser_server, screenshot):
    page = phone_page
    page.goto(browser_server + "/")
    expect(page.get_by_test_id("state-idle")).to_be_visible()
    screenshot(page, "phone-idle")
    page.get_by_test_id("search-input").fill("a red circle")
    cards = results_for(page, "text-all")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sideways
    one, two = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert abs(one["y"] - two["y"]) < 2 and two["x"] > one["x"]  # two columns
    assert one["width"] > 120
    for testid in ("mode-images", "mode-text", "mode-all", "upload-button"):
        box = page.get_by_test_id(testid).bounding_box()
        assert box["height"] >= 30 and box["x"] >= 0 and box["x"] + box["width"] <= 390, testid
    screenshot(page, "phone-results")

    page.get_by_test_id("mode-text").click()
    results_for(page, "text-text")
    screenshot(page, "phone-text")
    page.get_by_test_id("mode-images").click()
    results_for(page, "text-image").first.click()
    dialog = page.get_by_test_id("preview-dialog")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box["width"] <= 390
    expect(page.get_by_test_id("find-similar")).to_be_in_viewport()
    screenshot(page, "phone-preview")
    page.get_by_test_id("preview-close").click()
    expect(dialog).to_be_hidden()


# ---------------------------------------------------------------- language ------------------

@pytest.fixture
def zh_page(chromium):
    """A desktop page in a browser whose language is Simplified Chinese (navigator.languages)."""
    with open_page(chromium, DESKTOP, locale="zh-CN") as page:
        yield page


def test_page_speaks_chinese_to_a_chinese_browser(zh_page: Page, browser_server, screenshot):
    page = zh_page
    page.goto(browser_server + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("state-idle")).to_contain_text("按含义查找照片和文档")
    expect(page.get_by_test_id("lang-zh")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("footer-counts")).to_contain_text("张图片")
    expect(page.get_by_test_id("search-submit")).to_have_text("搜索")

    page.get_by_test_id("mode-text").click()
    expect(page.get_by_test_id("mode-text")).to_have_text("文本")
    page.get_by_test_id("search-input").fill("注意力机制")
    cards = results_for(page, "text-text")
    top = cards.evaluate_all("els => els.slice(0, 3).map(e => e.dataset.path)")
    assert any(path.endswith("attention-zh.md") for path in top), top
    expect(page.get_by_test_id("result-count")).to_contain_text("段文本")
    expect(page.get_by_test_id("result-count")).to_contain_text("毫秒")
    expect(cards.first.get_by_test_id("result-score")).to_have_text(re.compile(r"^\d{1,3}%$"))
    screenshot(page, "zh-text")

    cards.first.click()
    dialog = page.get_by_test_id("preview-dialog")
    expect(dialog.get_by_test_id("meta-path")).to_be_visible()
    expect(dialog.get_by_test_id("preview-meta")).to_contain_text("修改时间")
    expect(dialog.get_by_test_id("meta-modified")).to_contain_text("年")  # Intl's zh-CN date, e.g. 2025年1月2日
    expect(dialog.get_by_test_id("find-similar")).to_have_text("查找相关")
    screenshot(page, "zh-preview")
    page.keyboard.press("Escape")

    page.get_by_test_id("mode-images").click()  # Chinese words for images: the server may say how it matched
    page.get_by_test_id("search-input").fill("红色的圆形")
    results_for(page, "text-image")
    expect(page.get_by_test_id("result-count")).to_contain_text("张图片")
    screenshot(page, "zh-images")


def test_language_switch_wins_over_the_browser_and_persists(desktop_page: Page, browser_server, screenshot):
    page = desktop_page  # an en-US browser: English is the default
    page.goto(browser_server + "/?q=a+red+circle&mode=text-image")
    results_for(page, "text-image")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("lang-en")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("result-count")).to_contain_text("images")
    expect(page.get_by_test_id("mode-images")).to_have_text("Images")

    page.get_by_test_id("lang-zh").click()  # in place: the shown results are relabelled, not fetched again
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("result-count")).to_contain_text("张图片")
    expect(page.get_by_test_id("mode-images")).to_have_text("图片")
    expect(page.get_by_test_id("search-input")).to_have_value("a red circle")
    expect(page.get_by_test_id("footer-counts")).to_contain_text("已索引")
    screenshot(page, "lang-switched-zh")

    page.reload()
    results_for(page, "text-image")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("mode-images")).to_have_text("图片")
    expect(page.get_by_test_id("collapse-toggle").locator("xpath=..")).to_contain_text("合并重复项")

    page.get_by_test_id("lang-en").click()
    page.reload()
    results_for(page, "text-image")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("result-count")).to_contain_text("images")


# ---------------------------------------------------------------- relevance -----------------

def test_no_close_matches_offers_the_weaker_ones(desktop_page: Page, browser_server, screenshot):
    """Images cannot answer this question: nothing clears the relevance floor, and the page says so."""
    page = desktop_page
    page.goto(browser_server + "/?q=how+do+I+compress+vectors+to+save+memory&mode=text-image")
    state = page.get_by_test_id("state-no-close")
    expect(state).to_be_visible()
    expect(state).to_contain_text("No close matches")
    expect(page.get_by_test_id("result-count")).to_have_text("No close matches")
    show = page.get_by_test_id("show-weak")
    expect(show).to_have_text(re.compile(r"^Show weaker matches \(\d+\)$"))
    hidden = int(re.search(r"\d+", show.inner_text()).group())
    screenshot(page, "no-close-matches")

    show.click()
    grid = page.locator("[data-testid=results][data-mode=text-image][aria-busy=false]")
    cards = grid.locator(CARD)
    expect(cards.first).to_be_visible()
    assert query_of(page)["weak"] == ["1"]
    assert 1 <= cards.count() <= hidden
    assert set(cards.evaluate_all("els => els.map(e => e.dataset.weak)")) == {"true"}
    expect(cards.first.get_by_test_id("result-weak")).to_be_visible()
    assert cards.first.evaluate("e => getComputedStyle(e.querySelector('img')).opacity") != "1"  # de-emphasised
    expect(page.get_by_test_id("state-no-close")).to_have_count(0)
    screenshot(page, "weaker-matches")

    page.go_back()
    expect(page.get_by_test_id("state-no-close")).to_be_visible()


@pytest.fixture(scope="module")
def copies_server(copies_index):
    """A real server over a small folder holding the same photo three times."""
    server = ServerProcess(copies_index)
    yield server.url
    server.stop()


def test_duplicates_fold_into_one_hit_with_a_copies_badge(desktop_page: Page, copies_server, screenshot):
    page = desktop_page
    page.goto(copies_server + "/")
    page.get_by_test_id("upload-input").set_input_files(str(COFFEE))
    cards = results_for(page, "image-image")
    first = cards.first
    assert first.get_attribute("data-path").endswith(("coffee.jpg", "coffee-copy.jpg"))
    assert sum("coffee" in p for p in cards.evaluate_all("els => els.map(e => e.dataset.path)")) == 1
    badge = first.get_by_test_id("copies-badge")
    expect(badge).to_have_text("3 copies")  # the same bytes twice, and a resized copy
    expect(badge).to_have_attribute("aria-expanded", "false")
    badge.click()  # the badge opens its list, not the preview under it
    expect(page.get_by_test_id("preview-dialog")).to_be_hidden()
    listing = first.get_by_test_id("copies-list")
    expect(listing).to_be_visible()
    other = "coffee-copy.jpg" if first.get_attribute("data-path").endswith("coffee.jpg") else "coffee.jpg"
    expect(listing).to_contain_text(other)
    expect(listing).to_contain_text("coffee-small.jpg")
    screenshot(page, "copies-badge")

    page.get_by_test_id("lang-zh").click()
    expect(badge).to_have_text("共 3 份")
    page.get_by_test_id("lang-en").click()

    toggle = page.get_by_test_id("collapse-toggle")
    expect(toggle).to_be_checked()
    page.locator("#collapse-switch").click()  # the switch, as a person clicks it
    expect(toggle).not_to_be_checked()  # duplicates apart: every file comes back, and the address bar says so
    expect(page.locator(f"{CARD}[data-path$='coffee-copy.jpg']")).to_have_count(1)
    cards = results_for(page, "image-image")
    assert sum("coffee" in p for p in cards.evaluate_all("els => els.map(e => e.dataset.path)")) == 3
    expect(page.get_by_test_id("copies-badge")).to_have_count(0)
    assert query_of(page)["collapse"] == ["0"]
