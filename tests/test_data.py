"""dlbio_teach.data: registry, downloads through the mirror, cache, checksums, cards.

The download tests go through the real code path (pooch over HTTP) against the loopback
server that conftest.py starts on ../shared/data-mirror; each test gets its own empty
DLBIO_DATA_DIR.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlbio_teach import data
from dlbio_teach.data import (
    REGISTRY,
    ChecksumError,
    DataFile,
    Dataset,
    DatasetUnavailableError,
    dataset_card,
    fetch,
    load,
    source_url,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MIRRORED = sorted(n for n, d in REGISTRY.items() if d.mirrored)
CLOSED_PORT = "http://127.0.0.1:9"   # the discard port: nothing listens on loopback


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mirror_path(mirror_dir: Path, url: str) -> Path:
    assert url.startswith("https://")
    return mirror_dir / url[len("https://"):].split("?")[0]


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- the registry ---------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entry_is_complete(name):
    d = REGISTRY[name]
    assert d.name == name
    assert d.files, "a dataset needs at least one file"
    assert d.description.strip() and d.licence.strip() and d.citation.strip()
    assert d.source.startswith("https://")
    assert isinstance(d.chapters, tuple)
    assert set(d.chapters) <= set(CHAPTERS), d.chapters
    assert list(d.chapters) == sorted(d.chapters, key=list(CHAPTERS).index), "course order"
    if not d.chapters:    # its card must not suggest that the course uses it
        assert "no chapter" in dataset_card(name)
    for key, f in d.files.items():
        assert isinstance(f, DataFile)
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), (name, key, f.sha256)
        assert f.url.startswith("https://"), f.url
        assert f.fname and "/" not in f.fname and "?" not in f.fname
        if d.mirrored:
            assert isinstance(f.size, int) and f.size > 0
            assert not f.unzip
        # A hash that no machine of the project checks says where it was published.
        assert f.verified or f.hash_from.strip(), (name, key)


def test_registry_hashes_are_unique():
    hashes = [f.sha256 for d in REGISTRY.values() for f in d.files.values()]
    assert len(hashes) == len(set(hashes))


def test_datafile_fname():
    assert DataFile("https://h.org/a/b.tif", "0" * 64).fname == "b.tif"
    assert DataFile("https://h.org/x/SEM.zip", "0" * 64, unzip=True).fname == "SEM.zip"
    assert DataFile("https://h.org/s/ID/download", "0" * 64, unzip=True).fname == \
        "download.zip"
    assert DataFile("https://h.org/f/DSB.zip?download=1", "0" * 64, unzip=True).fname == \
        "DSB.zip"


@pytest.mark.parametrize("name", MIRRORED)
def test_mirrored_entry_is_in_the_mirror(mirror_dir, name):
    for key, f in REGISTRY[name].files.items():
        path = mirror_path(mirror_dir, f.url)
        assert path.is_file(), f"{name}/{key}: {path} missing from the mirror"
        assert path.stat().st_size == f.size, f"{name}/{key}: size differs"
        assert sha256_of(path) == f.sha256, f"{name}/{key}: sha256 differs"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_verified_means_checked_here(mirror_dir, name):
    """`verified=True` exactly for the files this test computes the sha256 of: the files
    of ../shared/data-mirror. Every other hash is labelled as published by its source."""
    for key, f in REGISTRY[name].files.items():
        path = mirror_path(mirror_dir, f.url)
        in_mirror = path.is_file() and sha256_of(path) == f.sha256
        assert f.verified == in_mirror, (name, key, f.verified, in_mirror)
        note = ("verified: the course's tests download this file and check its checksum"
                if in_mirror else "not checked by the course's tests")
        assert note in dataset_card(name)


# --- source_url and data_dir ----------------------------------------------------------

def test_source_url_without_mirror(monkeypatch):
    monkeypatch.delenv("DLBIO_DATA_MIRROR", raising=False)
    url = "https://example.org/a/b.tif"
    assert source_url(url) == url


@pytest.mark.parametrize("mirror", ["http://10.0.0.1:8000", "http://10.0.0.1:8000/",
                                    "  http://10.0.0.1:8000/  "])
def test_source_url_with_mirror(monkeypatch, mirror):
    monkeypatch.setenv("DLBIO_DATA_MIRROR", mirror)
    assert source_url("https://example.org/a/b.tif?x=1") == \
        "http://10.0.0.1:8000/example.org/a/b.tif?x=1"
    # Only https:// URLs are mapped.
    assert source_url("http://example.org/c.tif") == "http://example.org/c.tif"


def test_source_url_blank_mirror_is_ignored(monkeypatch):
    monkeypatch.setenv("DLBIO_DATA_MIRROR", "   ")
    assert source_url("https://example.org/a.tif") == "https://example.org/a.tif"


def test_data_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DLBIO_DATA_DIR", str(tmp_path / "d"))
    assert data.data_dir() == tmp_path / "d"


def test_data_dir_default(monkeypatch):
    monkeypatch.delenv("DLBIO_DATA_DIR", raising=False)
    folder = data.data_dir()
    assert isinstance(folder, Path)
    if data._course_root() is not None:
        assert folder == data._course_root() / "data" / "downloads"
    else:
        assert "dlbio_teach" in str(folder)


# --- dataset cards ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["stardist_nuclei", "n2v_sem"])
def test_dataset_card(name):
    d = REGISTRY[name]
    card = dataset_card(name)
    assert card.startswith(f"### `{name}`\n")
    assert d.description in card and d.licence in card and d.citation in card
    assert f"<{d.source}>" in card
    if d.chapters:
        assert f"- **Used in:** {', '.join(d.chapters)}\n" in card
    else:
        assert "- **Used in:** no chapter (no notebook of the course loads it)\n" in card
    for key, f in d.files.items():
        assert f"`{key}`" in card and f.url in card and f.sha256 in card
        if f.size:
            assert f"{f.size:,} bytes" in card
        else:
            assert "size not recorded" in card
    assert ("- **Prefetched:** " + ("yes, by `python -m dlbio_teach.data prefetch`"
                                    if d.mirrored else "only by `python -m dlbio_teach"
                                    ".data prefetch --all`")) in card
    assert "CI" not in card and "project" not in card    # words for learners


def test_dataset_card_unknown():
    with pytest.raises(KeyError):
        dataset_card("no_such_dataset")


# --- fetch and load through the mirror -------------------------------------------------

def test_fetch_unknown_dataset():
    with pytest.raises(KeyError, match=r"No dataset called 'nope'.*stardist_nuclei"):
        fetch("nope")


def test_fetch_blobs_downloads_into_data_dir(data_home):
    paths = fetch("blobs", progressbar=False)
    assert sorted(paths) == ["image", "labels"]
    for key, path in paths.items():
        f = REGISTRY["blobs"].files[key]
        assert path == data_home / "blobs" / f.fname
        assert path.is_file() and path.stat().st_size == f.size
        assert sha256_of(path) == f.sha256
    assert cache_files(data_home / "blobs") == ["blobs.tif", "blobs_labeled.tif"]


def test_load_blobs(data_home):
    blobs = load("blobs")
    assert blobs["image"].shape == (254, 256) and blobs["image"].dtype == np.uint8
    assert blobs["labels"].shape == (254, 256)
    assert int(blobs["labels"].max()) == 63
    assert len(np.unique(blobs["labels"])) == 64


def test_load_stardist_nuclei(data_home):
    nuc = load("stardist_nuclei")
    assert sorted(nuc) == ["image", "labels"]
    assert nuc["image"].shape == (512, 512) and nuc["labels"].shape == (512, 512)
    assert np.issubdtype(nuc["labels"].dtype, np.integer)
    labels = nuc["labels"]
    n_objects = len(np.unique(labels[labels > 0]))
    assert n_objects == 125                    # the card: "125 nuclei"
    assert int(labels.max()) == 183            # "label values run to 183, with gaps"
    assert nuc["image"].std() > 0


@pytest.mark.parametrize("name, key", [("stardist_nuclei", "labels"), ("blobs", "labels")])
def test_object_counts_in_descriptions(data_home, name, key):
    """A count of objects quoted on a card is the number of distinct labels, not the
    largest label value."""
    labels = load(name)[key]
    count = len(np.unique(labels[labels > 0]))
    quoted = re.findall(r"(\d+) (?:nuclei|labelled objects)", REGISTRY[name].description)
    assert quoted and all(int(q) == count for q in quoted), (quoted, count)
    assert "about" not in REGISTRY[name].description


def test_second_fetch_offline_uses_cache(data_home, monkeypatch):
    first = fetch("blobs", progressbar=False)
    mtimes = {k: p.stat().st_mtime_ns for k, p in first.items()}
    monkeypatch.setenv("DLBIO_OFFLINE", "1")
    monkeypatch.setenv("DLBIO_DATA_MIRROR", CLOSED_PORT)   # the network is not asked
    second = fetch("blobs", progressbar=False)
    assert second == first
    assert {k: p.stat().st_mtime_ns for k, p in second.items()} == mtimes
    assert load("blobs")["labels"].max() == 63


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_offline_with_empty_cache(data_home, monkeypatch, value):
    monkeypatch.setenv("DLBIO_OFFLINE", value)
    with pytest.raises(DatasetUnavailableError) as info:
        fetch("blobs", progressbar=False)
    message = str(info.value)
    assert "'blobs'" in message
    assert REGISTRY["blobs"].files["image"].url in message
    for variable in ("DLBIO_DATA_MIRROR", "DLBIO_DATA_DIR", "DLBIO_OFFLINE"):
        assert variable in message
    assert str(data_home) in message
    assert cache_files(data_home / "blobs") == []


def test_offline_error_without_mirror_names_upstream(data_home, monkeypatch):
    monkeypatch.setenv("DLBIO_OFFLINE", "1")
    monkeypatch.delenv("DLBIO_DATA_MIRROR")
    with pytest.raises(DatasetUnavailableError, match="stardist_nuclei") as info:
        load("stardist_nuclei")
    url = REGISTRY["stardist_nuclei"].files["image"].url
    assert f"fetched from: {url}" in str(info.value)


def test_checksum_mismatch_keeps_nothing(data_home):
    good = REGISTRY["blobs"].files["image"]
    wrong = hashlib.sha256(b"not the blobs image").hexdigest()
    registry = {"bad_blobs": Dataset(
        name="bad_blobs", files={"image": DataFile(good.url, wrong, good.size)},
        description="blobs with a wrong hash", licence="test", citation="test",
        source="https://example.org")}
    with pytest.raises(ChecksumError) as info:
        fetch("bad_blobs", registry=registry, progressbar=False)
    message = str(info.value)
    assert "'bad_blobs'" in message and wrong in message and "not kept" in message
    assert source_url(good.url) in message
    # Neither the file nor a temporary or partial download is left behind.
    assert cache_files(data_home / "bad_blobs") == []
    assert not (data_home / "blobs").exists()


def test_custom_registry_fetches_mirrored_file(data_home):
    good = REGISTRY["blobs"].files["labels"]
    registry = {"mine": Dataset(name="mine", files={"lab": good}, description="d",
                                licence="l", citation="c", source="https://example.org")}
    paths = fetch("mine", registry=registry, progressbar=False)
    assert paths["lab"] == data_home / "mine" / "blobs_labeled.tif"
    assert sha256_of(paths["lab"]) == good.sha256
    with pytest.raises(KeyError, match="No dataset called 'blobs'"):
        fetch("blobs", registry=registry)


def test_corrupted_cache_is_downloaded_again(data_home):
    paths = fetch("blobs", progressbar=False)
    image = paths["image"]
    good = image.read_bytes()
    corrupt = bytearray(good)
    corrupt[1000:1100] = bytes(100)    # same size, different content
    image.write_bytes(bytes(corrupt))
    assert sha256_of(image) != REGISTRY["blobs"].files["image"].sha256
    again = fetch("blobs", progressbar=False)
    assert again["image"] == image
    assert image.read_bytes() == good
    assert sha256_of(image) == REGISTRY["blobs"].files["image"].sha256
    assert cache_files(data_home / "blobs") == ["blobs.tif", "blobs_labeled.tif"]


def test_corrupted_cache_offline_is_not_served(data_home, monkeypatch):
    image = fetch("blobs", progressbar=False)["image"]
    image.write_bytes(b"garbage")
    monkeypatch.setenv("DLBIO_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError, match="not in the cache"):
        fetch("blobs", progressbar=False)
    assert not image.exists()


def test_unreachable_mirror(data_home, monkeypatch):
    monkeypatch.setenv("DLBIO_DATA_MIRROR", CLOSED_PORT)
    with pytest.raises(DatasetUnavailableError) as info:
        fetch("blobs", progressbar=False)
    message = str(info.value)
    assert "'blobs'" in message and "download failed" in message
    assert CLOSED_PORT in message
    assert cache_files(data_home / "blobs") == []


def test_file_missing_from_mirror(data_home):
    registry = {"ghost": Dataset(
        name="ghost", files={"image": DataFile("https://example.org/not/there.tif",
                                               "0" * 64)},
        description="d", licence="l", citation="c", source="https://example.org")}
    with pytest.raises(DatasetUnavailableError, match=r"'ghost'.*download failed"):
        fetch("ghost", registry=registry, progressbar=False)
    assert cache_files(data_home / "ghost") == []


def test_fetch_or_fallback_falls_back(data_home, monkeypatch, capsys):
    fetch("blobs", progressbar=False)           # the fallback is in the cache
    monkeypatch.setenv("DLBIO_OFFLINE", "1")    # n2v_sem (not mirrored) cannot be had
    name, arrays = data.fetch_or_fallback("n2v_sem", "blobs")
    assert name == "blobs"
    assert arrays["labels"].max() == 63
    err = capsys.readouterr().err
    assert "NOTE:" in err and "'n2v_sem'" in err and "falling back" in err and "'blobs'" in err


def test_fetch_or_fallback_prefers_the_dataset(data_home, capsys):
    name, arrays = data.fetch_or_fallback("blobs", "stardist_nuclei")
    assert name == "blobs" and arrays["image"].shape == (254, 256)
    assert "falling back" not in capsys.readouterr().err


@pytest.mark.parametrize("page", ["data/README.md", "book/datasets.md"])
def test_dataset_cards_on_pages_match_the_registry(page):
    """The cards in the README and the book are the registry's, word for word."""
    from pathlib import Path

    from dlbio_teach.data import REGISTRY, dataset_card
    text = (Path(__file__).resolve().parents[1] / page).read_text(encoding="utf-8")
    for name in REGISTRY:
        assert dataset_card(name) in text, (
            f"{page}: the card of {name!r} differs from the registry; regenerate it with "
            "`python -m dlbio_teach.data cards`")


# --- workshop mirror: prefetch --to FOLDER, served by any static server ------------------

CHAPTERS = {"basics": "01_nn_basics", "restoration": "02_restoration",
            "segmentation": "03_segmentation", "validation": "04_validation",
            "reporting": "05_reporting", "volumes": "06_volumes",
            "tracking": "07_tracking"}

# load("name"), fetch("name"), data.load("name"), fetch_or_fallback("name", "other"): the
# names that the notebooks' code cells fetch. (np.load("x.npy"), RunRecord.load(...) and
# other methods called `load` do not count: a dot before the call rules them out, unless
# it is the module's name.)
_CALL = re.compile(r"(?<![\w.])(?:(?:dlbio_teach\.)?data\.)?(load|fetch|fetch_or_fallback)"
                   r"\(\s*(['\"])(\w+)\2(?:\s*,\s*(['\"])(\w+)\4)?")


def datasets_loaded_by(source: str) -> set:
    names = set()
    for m in _CALL.finditer(source):
        names.add(m.group(3))
        if m.group(1) == "fetch_or_fallback" and m.group(5):
            names.add(m.group(5))
    return names


def test_datasets_loaded_by_parses_the_calls():
    src = ('nuclei = load("stardist_nuclei")\nx = data.fetch(\'blobs\')\n'
           'a = np.load("x.npy"); r = RunRecord.load("run")\n'
           'n, arr = fetch_or_fallback("n2v_sem", "hela_cells")\n# load\n')
    assert datasets_loaded_by(src) == {"stardist_nuclei", "blobs", "n2v_sem", "hela_cells"}


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_used_in_lists_match_the_notebooks():
    """Each card's "Used in" names exactly the chapters whose notebooks load the dataset."""
    notebooks = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(p.stem for p in notebooks) == sorted(CHAPTERS.values())
    loaded_in = {name: set() for name in REGISTRY}
    for chapter, stem in CHAPTERS.items():
        names = datasets_loaded_by(notebook_code(REPO_ROOT / "notebooks" / f"{stem}.ipynb"))
        unknown = names - set(REGISTRY)
        assert not unknown, f"{stem} loads datasets that are not in the registry: {unknown}"
        for name in names:
            loaded_in[name].add(chapter)
    for name, d in REGISTRY.items():
        assert set(d.chapters) == loaded_in[name], (
            f"{name}: the registry says it is used in {sorted(d.chapters)}, the notebooks "
            f"load it in {sorted(loaded_in[name])}; fix `chapters` in dlbio_teach/data.py "
            "and regenerate the cards (`python -m dlbio_teach.data cards`)")


# --- zip archives: load returns arrays; an extracted folder is re-checked ----------------

def _tif_bytes(array) -> bytes:
    import tifffile
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def _npy_bytes(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


MINI = {"train": np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8),
        "val": np.full((4, 5), 7, np.float32),
        "x": np.arange(6, dtype=np.int64).reshape(2, 3),
        "X_train": np.ones((3, 4, 4), np.float32),
        "Y_train": np.zeros((3, 4, 4), np.uint16)}


def make_archive(folder: Path, members: dict, name: str = "mini",
                 fname: str = "MINI.zip") -> tuple[dict, Path]:
    """A miniature zip laid out like the standard sets (N2V's SEM.zip has TIFF stacks in a
    folder, BSD68 .npy files, DenoiSeg .npz files), put into the download folder as if it
    had been downloaded, and a one-dataset registry that points at it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for member, payload in members.items():
            zf.writestr(member, payload)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    registry = {name: Dataset(
        name=name, files={"archive": DataFile(f"https://example.org/{fname}", digest,
                                              len(payload), unzip=True,
                                              hash_from="this test")},
        description="d", licence="l", citation="c", source="https://example.org",
        mirrored=False)}
    (folder / name).mkdir(parents=True, exist_ok=True)
    archive = folder / name / fname
    archive.write_bytes(payload)
    return registry, archive


def mini_members() -> dict:
    return {"SEM/train.tif": _tif_bytes(MINI["train"]),
            "SEM/validation.tiff": _tif_bytes(MINI["val"]),
            "BSD68/test/x.npy": _npy_bytes(MINI["x"]),
            "DSB2018/train/train_data.npz": _npz_bytes(X_train=MINI["X_train"],
                                                       Y_train=MINI["Y_train"]),
            "README.txt": b"not an image",
            "__MACOSX/SEM/._train.tif": b"resource fork"}


@pytest.fixture
def offline_home(tmp_path, monkeypatch) -> Path:
    """An empty download folder, offline: nothing can be downloaded (no mirror needed)."""
    folder = tmp_path / "downloads"
    monkeypatch.setenv("DLBIO_DATA_DIR", str(folder))
    monkeypatch.setenv("DLBIO_OFFLINE", "1")
    monkeypatch.setenv("DLBIO_DATA_MIRROR", CLOSED_PORT)
    return folder


def test_load_zip_archive_returns_arrays(offline_home):
    registry, _ = make_archive(offline_home, mini_members())
    arrays = load("mini", registry=registry)
    assert sorted(arrays) == ["archive"]
    inside = arrays["archive"]
    assert isinstance(inside, dict) and not isinstance(inside, Path)
    assert sorted(inside) == ["BSD68/test/x.npy", "DSB2018/train/train_data.npz/X_train",
                              "DSB2018/train/train_data.npz/Y_train", "SEM/train.tif",
                              "SEM/validation.tiff"]
    assert all(isinstance(a, np.ndarray) for a in inside.values())
    np.testing.assert_array_equal(inside["SEM/train.tif"], MINI["train"])
    assert inside["SEM/train.tif"].dtype == np.uint16
    np.testing.assert_array_equal(inside["SEM/validation.tiff"], MINI["val"])
    np.testing.assert_array_equal(inside["BSD68/test/x.npy"], MINI["x"])
    np.testing.assert_array_equal(inside["DSB2018/train/train_data.npz/X_train"],
                                  MINI["X_train"])
    np.testing.assert_array_equal(inside["DSB2018/train/train_data.npz/Y_train"],
                                  MINI["Y_train"])


def test_load_zip_archive_never_unpickles(offline_home, monkeypatch):
    """BSD68's test images are an object array in an .npy file (N2V reads it with
    allow_pickle=True). load() refuses it and says why, and never calls pickle."""
    import pickle

    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((2, 2)), np.zeros((3, 3))
    registry, _ = make_archive(offline_home, {
        "test/bsd68_gaussian25.npy": _npy_bytes(ragged, allow_pickle=True),
        "test/ok.tif": _tif_bytes(np.zeros((4, 4), np.uint8))})

    def no_unpickling(*args, **kwargs):
        raise AssertionError("load() unpickled a file")
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    with pytest.raises(ValueError, match=r"bsd68_gaussian25\.npy.*never unpickles"):
        load("mini", registry=registry)


def test_fetch_extracts_with_a_marker_written_last(offline_home):
    registry, archive = make_archive(offline_home, mini_members())
    folder = fetch("mini", registry=registry)["archive"]
    assert folder.is_dir() and folder.name == "MINI.unzipped"
    marker = json.loads((folder / data.EXTRACTED_MARKER).read_text())
    assert marker["archive_sha256"] == sha256_of(archive)
    assert marker["files"]["SEM/train.tif"] == sha256_of(folder / "SEM" / "train.tif")
    # Nothing half-written is left beside it.
    assert cache_files(offline_home / "mini") == ["MINI.unzipped", "MINI.zip"]
    # Reused as is when intact: the files are not written again.
    mtime = (folder / "SEM" / "train.tif").stat().st_mtime_ns
    assert fetch("mini", registry=registry)["archive"] == folder
    assert (folder / "SEM" / "train.tif").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("damage", ["remove_marker", "other_archive", "corrupt_marker",
                                    "change_a_file", "remove_a_file", "add_a_file"])
def test_extracted_archive_is_rechecked(offline_home, damage):
    registry, _ = make_archive(offline_home, mini_members())
    folder = fetch("mini", registry=registry)["archive"]
    marker = folder / data.EXTRACTED_MARKER
    train = folder / "SEM" / "train.tif"
    if damage == "remove_marker":
        marker.unlink()
    elif damage == "other_archive":
        record = json.loads(marker.read_text())
        record["archive_sha256"] = "0" * 64
        marker.write_text(json.dumps(record))
    elif damage == "corrupt_marker":
        marker.write_text("{not json")
    elif damage == "change_a_file":
        train.write_bytes(_tif_bytes(np.zeros((2, 8, 8), np.uint16)))
    elif damage == "remove_a_file":
        train.unlink()
    else:
        (folder / "SEM" / "stray.tif").write_bytes(_tif_bytes(np.ones((3, 3), np.uint8)))
    arrays = load("mini", registry=registry)["archive"]     # offline: from the archive
    np.testing.assert_array_equal(arrays["SEM/train.tif"], MINI["train"])
    assert "SEM/stray.tif" not in arrays
    record = json.loads(marker.read_text())
    assert record["archive_sha256"] == registry["mini"].files["archive"].sha256
    assert cache_files(offline_home / "mini") == ["MINI.unzipped", "MINI.zip"]


def test_folder_extracted_without_marker_is_replaced(offline_home):
    """A folder left by an older version of the course (no marker) is not trusted."""
    registry, _ = make_archive(offline_home, mini_members())
    stale = offline_home / "mini" / "MINI.unzipped" / "SEM"
    stale.mkdir(parents=True)
    (stale / "train.tif").write_bytes(_tif_bytes(np.zeros((1, 2, 2), np.uint16)))
    arrays = load("mini", registry=registry)["archive"]
    np.testing.assert_array_equal(arrays["SEM/train.tif"], MINI["train"])


# --- files that an installed package ships (stardist_nuclei_3d) ---------------------------

SHIPPED = sorted((n, k) for n, d in REGISTRY.items() for k, f in d.files.items()
                 if f.shipped_in)


def test_some_files_are_shipped_in_a_package():
    assert ("stardist_nuclei_3d", "image") in SHIPPED
    assert ("stardist_nuclei_3d", "labels") in SHIPPED


@pytest.mark.parametrize("name, key", SHIPPED)
def test_shipped_file_is_the_registered_one(name, key):
    """The package's copy has the registered size and sha256 (computed from it): the
    check behind the card's words "which the course's tests check"."""
    f = REGISTRY[name].files[key]
    package, _, inside = f.shipped_in.partition(":")
    assert package and inside and not inside.startswith("/"), f.shipped_in
    assert inside.split("/")[-1] == f.fname
    path = data.shipped_path(f)
    assert path is not None, f"the installed {package!r} does not ship {inside}"
    assert path.stat().st_size == f.size
    assert sha256_of(path) == f.sha256
    assert not f.verified and f.hash_from.strip()
    assert "which the course's tests check" in dataset_card(name)


def fake_package(root: Path, name: str, files: dict) -> None:
    """A package ``name`` under ``root`` (put on sys.path by the caller) with data files."""
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    for inside, payload in files.items():
        (root / name / inside).parent.mkdir(parents=True, exist_ok=True)
        (root / name / inside).write_bytes(payload)


def shipped_registry(item: DataFile, shipped_in: str, name: str = "shipped") -> dict:
    from dataclasses import replace
    return {name: Dataset(name=name, files={"image": replace(item, shipped_in=shipped_in)},
                          description="d", licence="l", citation="c",
                          source="https://example.org", mirrored=False)}


def test_load_stardist_nuclei_3d_offline_from_the_package(offline_home):
    """No network, an empty cache: the volume comes from the installed stardist."""
    vol = load("stardist_nuclei_3d")
    assert sorted(vol) == ["image", "labels"]
    assert vol["image"].shape == vol["labels"].shape == (31, 61, 57)
    assert vol["image"].dtype == np.uint16 and vol["image"].std() > 0
    labels = vol["labels"]
    assert np.issubdtype(labels.dtype, np.integer)
    count = len(np.unique(labels[labels > 0]))
    assert count == 51 and int(labels.max()) == 162
    quoted = re.findall(r"(\d+) nuclei", REGISTRY["stardist_nuclei_3d"].description)
    assert quoted and all(int(q) == count for q in quoted)
    assert "label values run to 162" in REGISTRY["stardist_nuclei_3d"].description
    # Copied whole into the cache, nothing else beside them.
    folder = offline_home / "stardist_nuclei_3d"
    assert cache_files(folder) == ["img3d.tif", "mask3d.tif"]
    for f in REGISTRY["stardist_nuclei_3d"].files.values():
        assert sha256_of(folder / f.fname) == f.sha256


def test_shipped_file_is_copied_once(offline_home):
    first = fetch("stardist_nuclei_3d")
    mtimes = {k: p.stat().st_mtime_ns for k, p in first.items()}
    assert fetch("stardist_nuclei_3d") == first
    assert {k: p.stat().st_mtime_ns for k, p in first.items()} == mtimes


def test_corrupted_cache_is_copied_again_from_the_package(offline_home):
    image = fetch("stardist_nuclei_3d")["image"]
    good = image.read_bytes()
    image.write_bytes(good[:1000] + bytes(100) + good[1100:])
    assert fetch("stardist_nuclei_3d")["image"] == image
    assert image.read_bytes() == good


def test_corrupted_package_copy_is_refused_offline(offline_home, tmp_path, monkeypatch):
    real = REGISTRY["stardist_nuclei_3d"].files["image"]
    payload = bytearray(data.shipped_path(real).read_bytes())
    payload[5000:5100] = bytes(100)                       # same size, other content
    fake_package(tmp_path / "site", "dlbio_fake_corrupt", {"images/img3d.tif": bytes(payload)})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry = shipped_registry(real, "dlbio_fake_corrupt:images/img3d.tif")
    with pytest.raises(ChecksumError) as info:
        load("shipped", registry=registry)
    message = str(info.value)
    assert "'shipped'" in message and real.sha256 in message and "not used" in message
    assert "dlbio_fake_corrupt" in message and "DLBIO_OFFLINE" in message
    assert cache_files(offline_home / "shipped") == []     # nothing kept, nothing partial


def test_corrupted_package_copy_online_downloads_the_file(data_home, tmp_path, monkeypatch):
    """A package that ships another version of the file: the registered one is downloaded."""
    blobs = REGISTRY["blobs"].files["image"]
    fake_package(tmp_path / "site", "dlbio_fake_other", {"blobs.tif": b"another file"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    registry = shipped_registry(blobs, "dlbio_fake_other:blobs.tif")
    path = fetch("shipped", registry=registry, progressbar=False)["image"]
    assert sha256_of(path) == blobs.sha256
    assert cache_files(data_home / "shipped") == ["blobs.tif"]


def test_without_the_package_the_file_is_downloaded(data_home):
    blobs = REGISTRY["blobs"].files["image"]
    registry = shipped_registry(blobs, "dlbio_no_such_package:blobs.tif")
    assert data.shipped_path(registry["shipped"].files["image"]) is None
    path = fetch("shipped", registry=registry, progressbar=False)["image"]
    assert sha256_of(path) == blobs.sha256


def test_without_the_package_offline_says_to_install_it(offline_home):
    blobs = REGISTRY["blobs"].files["image"]
    registry = shipped_registry(blobs, "dlbio_no_such_package:blobs.tif")
    with pytest.raises(DatasetUnavailableError, match="not in the cache") as info:
        fetch("shipped", registry=registry)
    assert "install the Python package 'dlbio_no_such_package'" in str(info.value)


def test_package_without_the_file(offline_home, tmp_path, monkeypatch):
    fake_package(tmp_path / "site", "dlbio_fake_empty", {})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    item = DataFile("https://example.org/x.tif", "0" * 64, shipped_in="dlbio_fake_empty:x.tif")
    assert data.shipped_path(item) is None
    with pytest.raises(DatasetUnavailableError):
        fetch("shipped", registry=shipped_registry(item, item.shipped_in))


def test_interrupted_copy_leaves_nothing_behind(offline_home, monkeypatch):
    import shutil

    def copy_half(source, target, *args, **kwargs):
        Path(target).write_bytes(Path(source).read_bytes()[:100])
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", copy_half)
    with pytest.raises(OSError, match="disk full"):
        fetch("stardist_nuclei_3d")
    assert cache_files(offline_home / "stardist_nuclei_3d") == []


def test_shipped_dataset_card():
    card = dataset_card("stardist_nuclei_3d")
    assert "synthetic nuclei" in card and "(31, 61, 57)" not in card
    assert "31x61x57 (Z, Y, X)" in card
    assert ("- **Prefetched:** comes with the Python package `stardist` (a dependency of the "
            "course)") in card
    assert card.count("of the copy shipped in the stardist 0.9.2 package, which the course's "
                      "tests check; the download from the URL is not checked") == 2
    assert "Weigert" in card and "WACV" in card and "BSD-3-Clause" in card
    assert "CI" not in card and "project" not in card
