"""The JSON API through Litestar's TestClient, over the sample data and demo models."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from searchd.app import create_app
from searchd.settings import load_settings
from tests.shapes import write_shape


def settings_for(data_dir: Path, **extra):
    return load_settings({"data_dir": data_dir, "models": "demo", **extra}, environ={})


@pytest.fixture(scope="module")
def client(demo_index, demo_engine):
    with TestClient(create_app(settings_for(demo_index), engine=demo_engine, warm=False)) as c:
        yield c


@pytest.fixture(scope="module")
def blue_square_png(tmp_path_factory) -> bytes:
    return write_shape(tmp_path_factory.mktemp("q"), "blue", "square", seed=31337).read_bytes()


def search(client, **params):
    r = client.get("/api/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def upload(client, data: bytes, name="q.png", **params):
    return client.post("/api/search/image", params=params, files={"file": (name, data, "image/png")})


# --- every mode -------------------------------------------------------------------------

def test_text_image(client):
    body = search(client, q="a red circle", mode="text-image", k=3)
    assert set(body) == {"query", "mode", "took_ms", "hits", "next_offset", "weak_hidden", "notice"}
    hit = body["hits"][0]
    assert "red-circle" in hit["path"] and hit["kind"] == "image"
    assert hit["thumbnail_url"] == f"/api/items/{hit['id']}/thumbnail"
    assert hit["file_url"] == f"/api/items/{hit['id']}/file"
    assert {"size", "modified", "width", "height"} <= set(hit["metadata"])


def test_text_text_is_hybrid(client):
    body = search(client, q="turning spoken audio into written words", mode="text-text", k=3)
    assert body["hits"][0]["path"].endswith("whisper.md")
    rare = search(client, q="PagedAttention", mode="text-text", k=3)
    assert rare["hits"][0]["path"].endswith("vllm.rst")
    assert "<mark>PagedAttention</mark>" in rare["hits"][0]["snippet"]


def test_text_all_fuses_images_and_text(client):
    hits = search(client, q="a red circle", mode="text-all", k=4)["hits"]
    kinds = {h["kind"] for h in hits}
    assert kinds == {"image", "text"}
    assert "red-circle" in hits[0]["path"]  # the passage about a red circle, or the picture of one
    assert any("red-circle" in h["path"] and h["kind"] == "image" for h in hits[:3])
    assert any(h["path"].endswith("red-circle.md") for h in hits[:3])


def test_image_image_upload(client, blue_square_png):
    r = upload(client, blue_square_png, mode="image-image", k=2)
    assert r.status_code == 200, r.text
    assert all("blue-square" in h["path"] for h in r.json()["hits"])


def test_image_text_upload(client, blue_square_png):
    r = upload(client, blue_square_png, mode="image-text", k=3)
    assert r.json()["hits"][0]["path"].endswith("shapes/blue-square.md")


def test_image_all_upload_with_form_fields(client, blue_square_png):
    r = client.post("/api/search/image", files={"file": ("q.png", blue_square_png, "image/png")},
                    data={"mode": "image-all", "k": "4"})
    hits = r.json()["hits"]
    assert r.json()["mode"] == "image-all" and len(hits) == 4
    assert all("blue-square" in h["path"] for h in hits[:3])  # the passages about it, then the pictures
    assert any("blue-square" in h["path"] and h["kind"] == "image" for h in hits[:3])
    assert any(h["path"].endswith("blue-square.md") for h in hits)


def test_similar_to_an_indexed_item(client):
    source = search(client, q="a blue square", mode="text-image", k=1)["hits"][0]
    assert "blue-square" in source["path"]
    similar = client.get(f"/api/items/{source['id']}/similar", params={"k": 1}).json()["hits"]
    assert similar[0]["id"] != source["id"] and "blue-square" in similar[0]["path"]


# --- paging, filters, sorting -----------------------------------------------------------

def test_pages_are_disjoint(client):
    # weak=true: paging through everything, the weak hits below the relevance floor included
    first = search(client, q="neural network model", mode="text-all", k=5, weak="true")
    assert first["next_offset"] == 5
    second = search(client, q="neural network model", mode="text-all", k=5, offset=5, weak="true")
    assert {h["id"] for h in first["hits"]}.isdisjoint({h["id"] for h in second["hits"]})
    assert len(second["hits"]) == 5


def test_kind_and_path_prefix_filters(client, demo_index):
    hits = search(client, q="a red circle", mode="text-all", k=10, kind="text")["hits"]
    assert hits and all(h["kind"] == "text" for h in hits)
    some_path = search(client, q="a red circle", mode="text-image", k=1)["hits"][0]["path"]
    prefix = str(Path(some_path).parent.parent / "photos")
    hits = search(client, q="a red circle", mode="text-image", k=10, path_prefix=prefix, weak="true")["hits"]
    assert hits and all(h["path"].startswith(prefix) for h in hits)


def test_taken_date_filter_and_date_sort(client):
    # "a photo" matches no picture well (the demo CLIP knows coloured shapes): weak=true
    # lists every photo, so the filters and the order are what is tested here
    photos = dict(q="a photo", mode="text-image", weak="true")
    hits = search(client, **photos, k=20, taken_after="2012-01-01")["hits"]
    assert [Path(h["path"]).name for h in hits] == ["coffee.jpg"]
    assert hits[0]["metadata"]["camera"].startswith("Canon") and "gps" in hits[0]["metadata"]
    hits = search(client, **photos, k=20, taken_before="2012-12-31")["hits"]
    assert [Path(h["path"]).name for h in hits] == ["chelsea.jpg"]
    dated = search(client, **photos, k=5, sort="date", taken_after="2000-01-01")["hits"]
    assert [Path(h["path"]).name for h in dated] == ["coffee.jpg", "chelsea.jpg"]
    newest_first = search(client, **photos, k=20, sort="date")["hits"]
    dates = [h["metadata"].get("taken_at") or h["metadata"]["modified"] for h in newest_first]
    assert dates == sorted(dates, reverse=True)


def test_date_sort_applies_after_the_floor(client):
    relevant = search(client, q="a red circle", mode="text-image", k=20)
    dated = search(client, q="a red circle", mode="text-image", k=20, sort="date")
    assert {h["id"] for h in dated["hits"]} == {h["id"] for h in relevant["hits"]}
    assert dated["weak_hidden"] == relevant["weak_hidden"] > 0
    dates = [h["metadata"].get("taken_at") or h["metadata"]["modified"] for h in dated["hits"]]
    assert dates == sorted(dates, reverse=True)


def test_scores_are_calibrated_to_0_1_and_fall_with_rank(client):
    for mode in ("text-image", "text-text", "text-all"):
        hits = search(client, q="a red circle", mode=mode, k=50, weak="true")["hits"]
        scores = [h["score"] for h in hits]
        assert scores and all(0.0 <= s <= 1.0 for s in scores)
        assert scores == sorted(scores, reverse=True)
        assert all(h["weak"] == (h["score"] < 0.5) for h in hits)  # 0.5 is the relevance floor


def test_the_floor_and_min_score(client):
    everything = search(client, q="a red circle", mode="text-image", k=200, weak="true")  # every image
    default = search(client, q="a red circle", mode="text-image", k=50)
    strong = [h for h in everything["hits"] if not h["weak"]]
    # by default only hits above the floor, and the response says how many were left out
    assert [h["id"] for h in default["hits"]] == [h["id"] for h in strong]
    assert default["weak_hidden"] == len(everything["hits"]) - len(strong) > 0
    # min_score above the floor is stricter than the floor
    cutoff = (strong[0]["score"] + strong[-1]["score"]) / 2
    kept = search(client, q="a red circle", mode="text-image", k=50, min_score=cutoff)["hits"]
    assert kept and all(h["score"] >= cutoff for h in kept) and len(kept) < len(strong)
    # min_score below the floor does not bring weak hits back; weak=true does, down to min_score
    assert search(client, q="a red circle", mode="text-image", k=50, min_score=0.01)["hits"] == default["hits"]
    some_weak = search(client, q="a red circle", mode="text-image", k=50, weak="true", min_score=0.2)["hits"]
    assert all(h["score"] >= 0.2 for h in some_weak) and len(strong) < len(some_weak) < len(everything["hits"])


# --- items, thumbnails, files -----------------------------------------------------------

def test_item_thumbnail_and_file(client):
    hit = search(client, q="a red circle", mode="text-image", k=1)["hits"][0]
    item = client.get(f"/api/items/{hit['id']}").json()
    assert item["path"] == hit["path"] and item["similar_url"].endswith("/similar")
    thumb = client.get(hit["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert thumb.content[:4] == b"RIFF" and thumb.content[8:12] == b"WEBP"
    original = client.get(hit["file_url"])
    assert original.status_code == 200 and original.content == Path(hit["path"]).read_bytes()


@pytest.mark.parametrize("url", [
    "/api/items/999999999", "/api/items/999999999/file", "/api/items/999999999/thumbnail",
    "/api/items/..%2F..%2F..%2Fetc%2Fpasswd/file", "/api/items/%2Fetc%2Fpasswd/file",
    "/api/items/1/file/../../../../etc/passwd", "/static/../../../../etc/passwd", "/static/..%2F..%2Fpyproject.toml",
])
def test_nothing_outside_the_index_is_served(client, url):
    r = client.get(url)
    assert r.status_code == 404, (url, r.status_code, r.text[:200])
    assert "root:" not in r.text and "[project]" not in r.text
    assert r.json()["status"] == 404


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("params, needle", [
    ({"q": "x", "mode": "sideways"}, "unknown mode"),
    ({"q": "x", "k": 0}, "k"),
    ({"q": "x", "k": 201}, "k"),
    ({"q": "", "mode": "text-image"}, "empty"),
    ({"q": "   ", "mode": "text-text"}, "empty"),
    ({"q": "x" * 1001}, "q"),
    ({"q": "x", "offset": -1}, "offset"),
    ({"q": "x", "k": "lots"}, "k"),
    ({"q": "x", "taken_after": "last tuesday"}, "taken_after"),
    ({"q": "x", "sort": "random"}, "sort"),
    ({"q": "x", "kind": "video"}, "kind"),
    ({"mode": "image-image"}, "needs an image"),
])
def test_bad_parameters_are_400_with_a_message(client, params, needle):
    r = client.get("/api/search", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == 400 and needle in body["error"]


def test_upload_errors(client, demo_index, demo_engine, blue_square_png):
    r = upload(client, b"this is plain text, not a picture", name="fake.png")
    assert r.status_code == 415 and "not a usable image" in r.json()["error"]
    r = upload(client, b"", name="empty.png")
    assert r.status_code == 415
    r = client.post("/api/search/image", files={"other": ("q.png", blue_square_png, "image/png")})
    assert r.status_code == 400 and "file" in r.json()["error"]
    r = upload(client, blue_square_png, mode="text-image")
    assert r.status_code == 400
    small = settings_for(demo_index, max_upload_mb=0.001)
    with TestClient(create_app(small, engine=demo_engine, warm=False)) as tiny:
        r = upload(tiny, blue_square_png + b"\0" * 4096)
        assert r.status_code == 413 and r.json() == {"error": r.json()["error"], "status": 413}


def test_empty_index_says_what_to_run(tmp_path, demo_encoders):
    from indexer.datadir import DataDir
    from searchd.engine import SearchEngine

    engine = SearchEngine(DataDir(tmp_path / "nothing"), *demo_encoders)
    with TestClient(create_app(settings_for(tmp_path / "nothing"), engine=engine, warm=False)) as c:
        r = c.get("/api/search", params={"q": "anything"})
        assert r.status_code == 503 and "searchd index" in r.json()["error"]
        assert c.get("/api/status").json()["indexed"] is False
        assert c.get("/healthz").status_code == 200


def test_api_key_is_enforced(demo_index, demo_engine):
    with TestClient(create_app(settings_for(demo_index, api_key="s3cret"), engine=demo_engine, warm=False)) as c:
        r = c.get("/api/search", params={"q": "a red circle"})
        assert r.status_code == 401 and r.json()["status"] == 401
        assert c.get("/api/search", params={"q": "x"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/search", params={"q": "x"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/status", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/api/items/1/thumbnail").status_code == 401
        assert c.get("/healthz").status_code == 200


def test_openapi_describes_every_route(client):
    doc = client.get("/schema/openapi.json").json()
    for path in ("/api/search", "/api/search/image", "/api/items/{item_id}", "/api/items/{item_id}/similar",
                 "/api/items/{item_id}/thumbnail", "/api/items/{item_id}/file", "/api/status", "/healthz"):
        assert path in doc["paths"], path
    params = {p["name"] for p in doc["paths"]["/api/search"]["get"]["parameters"]}
    assert {"q", "mode", "k", "offset", "min_score", "kind", "path_prefix", "taken_after", "taken_before",
            "sort"} <= params
    assert client.get("/schema").status_code == 200


@pytest.mark.parametrize("url", ["/api/search?q=%00%ff", "/api/search?q=a&min_score=nan",
                                 "/api/search?q=a&k=1e9", "/api/items/abc", "/api/items/0",
                                 "/api/search?q=%E4%BD%A0%E5%A5%BD&mode=text-all", "/api/search?q=a&offset=99999999"])
def test_odd_input_never_gives_a_500(client, url):
    assert client.get(url).status_code < 500


def test_text_item_finds_related_passages_by_meaning(client):
    source = search(client, q="turning spoken audio into written words", mode="text-text", k=1)["hits"][0]
    related = client.get(f"/api/items/{source['id']}/similar", params={"mode": "text-text", "k": 3})
    assert related.status_code == 200, related.text
    hits = related.json()["hits"]
    assert hits and all(h["kind"] == "text" and h["path"] != source["path"] for h in hits)
    image = search(client, q="a red circle", mode="text-image", k=1)["hits"][0]
    refused = client.get(f"/api/items/{image['id']}/similar", params={"mode": "text-text"})
    assert refused.status_code == 400 and "image-*" in refused.json()["error"]


def test_camera_name_does_not_repeat_the_make(client):
    hit = search(client, q="a photo", mode="text-image", k=20, taken_after="2013-01-01", weak="true")["hits"][0]
    assert hit["metadata"]["camera"] == "Canon EOS 5D Mark III"
