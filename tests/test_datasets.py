"""Corpus importers: miniature FF++, Celeb-DF v2, DFDC, DF40 and plain folders built from tiny generated media,
imported into the kit's layout; rows, labels, kinds, origins, splits, links and every bad-metadata case."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import cv2
import pytest

from lib.corpora import importers as datasets
from lib.corpora.importers import CorpusError, import_corpus
from lib.errors import ParameterError
from lib.frames import read_frames
from lib.training.data import file_table
from media_factory import face_frames, face_image, write_video


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The bytes of one tiny face video (4 frames, 64x48) and one tiny face PNG (32x32), written once."""
    folder = tmp_path_factory.mktemp("blobs")
    write_video(folder / "v.mp4", face_frames(4, (64, 48)))
    cv2.imwrite(str(folder / "i.png"), cv2.cvtColor(face_image((32, 32)), cv2.COLOR_RGB2BGR))
    return {".mp4": (folder / "v.mp4").read_bytes(), ".png": (folder / "i.png").read_bytes()}


def make_tree(root: Path, files: list[str], blobs: dict[str, bytes], text: dict[str, object] | None = None) -> Path:
    """Write media ``files`` (paths relative to ``root``) from the blobs, and text/JSON files from ``text``."""
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blobs.get(path.suffix, b"not media\n"))
    for rel, content in (text or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return root


def rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "labels.csv").open(newline="", encoding="utf-8") as f:
        return {r["filename"]: r for r in csv.DictReader(f)}


def skipped(out: Path) -> list[dict[str, str]]:
    with (out / "skipped.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def skip_reasons(out: Path) -> dict[str, str]:
    """Skipped file name → reason."""
    return {Path(s["path"]).name: s["reason"] for s in skipped(out)}


def check_kit_reads(out: Path, src: Path) -> None:
    """The kit's training reader takes the folder: one row per labels.csv row, every path a link into SRC."""
    table = file_table(str(out))
    labels = rows(out)
    assert sorted(table["filename"]) == sorted(labels)
    for path, label in zip(table["path"], table["label"]):
        p = Path(path)
        assert p.is_symlink() and p.parent == out.resolve() / "media"
        assert src.resolve() in p.resolve().parents
    assert list(table["label"]) == [int(labels[f]["label"]) for f in table["filename"]]
    assert list(table["kind"]) == [labels[f]["kind"] for f in table["filename"]]
    assert list(table["origin"]) == [f"{out.name}/{labels[f]['origin']}" for f in table["filename"]]  # "000" stays


# ---------------------------------------------------------------------------------------------- FaceForensics++

FFPP_FILES = [f"original_sequences/youtube/c23/videos/{i:03d}.mp4" for i in range(6)] + [
    "original_sequences/actors/c23/videos/01__exit_phone_room.mp4",
    "original_sequences/youtube/c40/videos/000.mp4",  # another compression: not imported at c23
    "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4",
    "manipulated_sequences/Deepfakes/c23/videos/001_000.mp4",
    "manipulated_sequences/Deepfakes/masks/videos/000_001.mp4",  # masks: outside the layout
    "manipulated_sequences/Face2Face/c23/videos/002_003.mp4",
    "manipulated_sequences/NeuralTextures/c23/videos/004_005.mp4",
    "manipulated_sequences/FaceShifter/c23/videos/003_002.mp4",
    "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4",
]
FFPP_SPLITS = {"splits/train.json": [["000", "001"]], "splits/val.json": [["002", "003"]],
               "splits/test.json": [["005", "004"]]}


def test_ffpp(tmp_path: Path, blobs: dict[str, bytes], capsys: pytest.CaptureFixture) -> None:
    src = make_tree(tmp_path / "ff", FFPP_FILES, blobs, FFPP_SPLITS)
    out = tmp_path / "out"
    record = import_corpus("ff++", src, out)
    got = rows(out)
    assert set(got) == {f"youtube_{i:03d}.mp4" for i in range(6)} | {
        "actors_01__exit_phone_room.mp4", "Deepfakes_000_001.mp4", "Deepfakes_001_000.mp4", "Face2Face_002_003.mp4",
        "NeuralTextures_004_005.mp4", "FaceShifter_003_002.mp4",
        "DeepFakeDetection_01_02__exit_phone_room__YVGY8LOK.mp4"}
    assert list(next(iter(got.values()))) == ["filename", "label", "source", "kind", "origin", "split"]
    assert got["youtube_003.mp4"] == {"filename": "youtube_003.mp4", "label": "0", "source": "ff++/youtube",
                                      "kind": "real-video", "origin": "003", "split": "val"}
    expect = {"Deepfakes_001_000.mp4": ("1", "faceswap", "001", "train"),
              "Face2Face_002_003.mp4": ("1", "talkinghead", "002", "val"),
              "NeuralTextures_004_005.mp4": ("1", "lipsync", "004", "test"),
              "FaceShifter_003_002.mp4": ("1", "faceswap", "003", "val"),
              "DeepFakeDetection_01_02__exit_phone_room__YVGY8LOK.mp4": ("1", "faceswap", "01__exit_phone_room", ""),
              "actors_01__exit_phone_room.mp4": ("0", "real-video", "01__exit_phone_room", "")}
    for name, (label, kind, origin, split) in expect.items():
        assert (got[name]["label"], got[name]["kind"], got[name]["origin"], got[name]["split"]) == \
            (label, kind, origin, split), name
    link = out / "media" / "Deepfakes_000_001.mp4"
    assert link.is_symlink() and os.path.isabs(os.readlink(link))
    assert link.resolve() == (src / "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4").resolve()
    assert read_frames(link, 2).frames[0].shape == (48, 64, 3)  # the kit decodes through the link
    assert skipped(out) == [] and record["files"] == 13 and record["skipped"] == 0
    check_kit_reads(out, src)
    printed = capsys.readouterr().out
    assert "imported 13 files (ff++)" in printed and "skipped 0" in printed
    assert json.loads((out / "import.json").read_text())["by_kind"]


def test_ffpp_bad_metadata(tmp_path: Path, blobs: dict[str, bytes], capsys: pytest.CaptureFixture) -> None:
    src = make_tree(tmp_path / "ff", FFPP_FILES + [
        "manipulated_sequences/Deepfakes/c23/videos/009_000.mp4",  # original 009 absent
        "manipulated_sequences/Deepfakes/c23/videos/not_a_pair.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/notes.txt",
        "manipulated_sequences/SomethingNew/c23/videos/000_001.mp4",
    ], blobs)
    import_corpus("ff++", src, tmp_path / "out")
    reasons = skip_reasons(tmp_path / "out")
    assert reasons == {"009_000.mp4": "original absent", "not_a_pair.mp4": "name does not match the layout",
                       "notes.txt": "not a media file", "SomethingNew": "unknown folder"}
    assert "split" not in next(iter(rows(tmp_path / "out").values()))  # no split files: no split column
    printed = capsys.readouterr().out
    assert "skipped 4: " in printed and "original absent 1" in printed
    import_corpus("ff++", src, tmp_path / "out2", keep_orphans=True, methods=["Deepfakes"])
    got = rows(tmp_path / "out2")
    assert got["Deepfakes_009_000.mp4"]["origin"] == "009"
    assert not any(n.startswith(("Face2Face", "NeuralTextures")) for n in got)
    assert "not imported (--methods): manipulated_sequences/Face2Face" in capsys.readouterr().out


def test_ffpp_numeric_origins_stay_text(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    """Every origin all digits ("000"): the kit's reader must not turn them into numbers (000 and 0 would merge)."""
    src = make_tree(tmp_path / "ff", [f for f in FFPP_FILES if "actors" not in f and "DeepFakeDetection" not in f],
                    blobs)
    import_corpus("ff++", src, tmp_path / "out")
    assert rows(tmp_path / "out")["Deepfakes_001_000.mp4"]["origin"] == "001"
    check_kit_reads(tmp_path / "out", src)


def test_ffpp_parameters_and_split_files(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    src = make_tree(tmp_path / "ff", FFPP_FILES, blobs)
    with pytest.raises(ParameterError, match="compression='raw'.*c23, c40"):
        import_corpus("ff++", src, tmp_path / "o1", compression="raw")
    with pytest.raises(ParameterError, match="methods"):
        import_corpus("ff++", src, tmp_path / "o2", methods=["DeepFaceLab"])
    make_tree(src, [], blobs, {"splits/train.json": [["000", "001"]], "splits/test.json": [["001", "002"]]})
    with pytest.raises(CorpusError, match="val.json missing"):
        import_corpus("ff++", src, tmp_path / "o3")
    make_tree(src, [], blobs, {"splits/val.json": [["003", "004"]]})
    with pytest.raises(CorpusError, match="video 001 is in both train.json and test.json"):
        import_corpus("ff++", src, tmp_path / "o4")
    make_tree(src, [], blobs, {"splits/val.json": {"not": "pairs"}})
    with pytest.raises(CorpusError, match="not a list of"):
        import_corpus("ff++", src, tmp_path / "o5")
    with pytest.raises(CorpusError, match="neither original_sequences"):
        import_corpus("ff++", src / "splits", tmp_path / "o6")


# ------------------------------------------------------------------------------------------------- Celeb-DF v2


def test_celebdf(tmp_path: Path, blobs: dict[str, bytes], capsys: pytest.CaptureFixture) -> None:
    files = ["Celeb-real/id0_0000.mp4", "Celeb-real/id1_0000.mp4", "Celeb-real/id1_0003.mp4", "YouTube-real/00000.mp4",
             "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0000.mp4",
             "Celeb-synthesis/id1_id0_0003.mp4",
             "Celeb-synthesis/id2_id0_0001.mp4",  # its original id2_0001 is absent
             "Celeb-synthesis/weird.mp4"]
    listing = "\n".join(["1 YouTube-real/00000.mp4", "0 Celeb-synthesis/id0_id1_0000.mp4", "1 Celeb-real/id0_0000.mp4",
                         "1 Celeb-synthesis/id1_id0_0000.mp4",  # 1 = real in that file: contradicts the folder
                         "0 Celeb-synthesis/id9_id1_0000.mp4",  # not on disk
                         "0 Celeb-synthesis/id0_id1_0000.mp4",  # listed twice
                         "2 Celeb-real/id1_0000.mp4", "", "justonefield"]) + "\n"
    src = make_tree(tmp_path / "Celeb-DF-v2", files, blobs, {"List_of_testing_videos.txt": listing})
    out = tmp_path / "out"
    import_corpus("celebdf", src, out)
    got = rows(out)
    assert set(got) == {"id0_0000.mp4", "id1_0000.mp4", "id1_0003.mp4", "00000.mp4", "id0_id1_0000.mp4",
                        "id1_id0_0003.mp4"}
    assert got["id0_id1_0000.mp4"] == {"filename": "id0_id1_0000.mp4", "label": "1",
                                       "source": "celebdf/Celeb-synthesis", "kind": "faceswap",
                                       "origin": "id0_0000", "split": "test"}
    assert (got["id1_id0_0003.mp4"]["origin"], got["id1_id0_0003.mp4"]["split"]) == ("id1_0003", "train")
    yt = got["00000.mp4"]
    assert (yt["label"], yt["kind"], yt["split"]) == ("0", "real-video", "test")
    assert got["id0_0000.mp4"]["split"] == "test" and got["id1_0000.mp4"]["split"] == "train"
    reasons = [(Path(s["path"]).name, s["reason"]) for s in skipped(out)]
    assert sorted(reasons) == sorted([
        ("weird.mp4", "name does not match the layout"), ("id1_id0_0000.mp4", "label disagrees"),
        ("id9_id1_0000.mp4", "missing file"), ("id0_id1_0000.mp4", "duplicate name"),
        ("List_of_testing_videos.txt", "unknown label"), ("List_of_testing_videos.txt", "malformed line"),
        ("id2_id0_0001.mp4", "original absent")])
    check_kit_reads(out, src)
    assert "label disagrees 1" in capsys.readouterr().out


def test_celebdf_videos_subfolders_without_test_list(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    """The <folder>/videos/ layout some repositories use; no test list means no split column."""
    src = make_tree(tmp_path / "cdf", ["Celeb-real/videos/id3_0002.mp4", "Celeb-synthesis/videos/id3_id4_0002.mp4",
                                       "Youtube-real/videos/00007.mp4"], blobs)
    import_corpus("celebdf", src, tmp_path / "out", link="relative")
    got = rows(tmp_path / "out")
    assert set(got) == {"id3_0002.mp4", "id3_id4_0002.mp4", "00007.mp4"} and "split" not in got["00007.mp4"]
    assert got["00007.mp4"]["source"] == "celebdf/YouTube-real"
    assert not os.path.isabs(os.readlink(tmp_path / "out" / "media" / "id3_0002.mp4"))
    with pytest.raises(CorpusError, match="Celeb-real"):
        import_corpus("celebdf", tmp_path / "out" / "media", tmp_path / "out2")


# -------------------------------------------------------------------------------------------------------- DFDC


def test_dfdc(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    part0 = {"a.mp4": {"label": "REAL", "split": "train", "original": None},
             "b.mp4": {"label": "FAKE", "split": "train", "original": "a.mp4"},
             "c.mp4": {"label": "FAKE", "split": "train", "original": "zz.mp4"},  # original in no metadata
             "d.mp4": {"label": "MAYBE", "split": "train"},
             "e.mp4": {"label": "REAL", "split": "train", "original": None},  # not on disk
             "i.mp4": {"label": "FAKE", "split": "train", "original": "e.mp4"},  # original missing on disk
             "j.mp4": {"label": "FAKE", "split": "train"}}  # a FAKE without 'original'
    part1 = {"a.mp4": {"label": "REAL", "split": "train", "original": None},  # the same name in another part
             "g.mp4": {"label": "REAL", "split": "train", "original": None},
             "h.mp4": {"label": "FAKE", "split": "train", "original": "g.mp4"}}
    files = [f"dfdc_train_part_0/{n}" for n in ("a.mp4", "b.mp4", "c.mp4", "d.mp4", "f.mp4", "i.mp4", "j.mp4")] + \
            [f"dfdc_train_part_1/{n}" for n in ("a.mp4", "g.mp4", "h.mp4")]
    src = make_tree(tmp_path / "dfdc", files, blobs, {"dfdc_train_part_0/metadata.json": part0,
                                                      "dfdc_train_part_1/metadata.json": part1})
    out = tmp_path / "out"
    import_corpus("dfdc", src, out)
    got = rows(out)
    assert set(got) == {"a.mp4", "b.mp4", "g.mp4", "h.mp4"}
    assert got["b.mp4"] == {"filename": "b.mp4", "label": "1", "source": "dfdc", "kind": "faceswap",
                            "origin": "a.mp4", "split": "train"}
    assert (got["a.mp4"]["label"], got["a.mp4"]["origin"], got["a.mp4"]["kind"]) == ("0", "a.mp4", "real-video")
    assert (out / "media" / "a.mp4").resolve() == (src / "dfdc_train_part_0" / "a.mp4").resolve()
    by_path = {str(Path(s["path"]).relative_to(src)): s["reason"] for s in skipped(out)}
    assert by_path == {"dfdc_train_part_0/c.mp4": "original absent", "dfdc_train_part_0/d.mp4": "unknown label",
                       "dfdc_train_part_0/e.mp4": "missing file", "dfdc_train_part_0/f.mp4": "not in the metadata",
                       "dfdc_train_part_0/i.mp4": "original absent", "dfdc_train_part_0/j.mp4": "original absent",
                       "dfdc_train_part_1/a.mp4": "duplicate name"}
    check_kit_reads(out, src)
    (src / "dfdc_train_part_1" / "metadata.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CorpusError, match="cannot be read as JSON"):
        import_corpus("dfdc", src, tmp_path / "out2")


# -------------------------------------------------------------------------------------------------------- DF40


def test_df40(tmp_path: Path, blobs: dict[str, bytes], capsys: pytest.CaptureFixture) -> None:
    files = [f"DF40_train/simswap/frames/001_870/{i:03d}.png" for i in range(4)] + [
        "DF40_train/simswap/landmarks/001_870/000.npy",  # beside frames/: not imported, listed once
        "DF40_train/StyleGAN2/001/seed0001.png", "DF40_train/wav2lip/frames/002_003/000.png",
        "DF40_train/Inswapper/frames/001_870/000.png",  # an alias of inswap
        "DF40/simswap/cdf/frames/id0_id1_0000/000.png", "DF40/simswap/ff/001_002/000.png",
        "DF40/simswap/readme.md",  # beside ff/ and cdf/
        "DF40/heygen/real/clip7/000.png", "DF40/heygen/fake/clip7/000.png", "DF40/MidJourney/img_9.png",
        "DF40/sd2.1/a.mp4", "DF40/notamethod/x.png", "extra/x.png"]
    src = make_tree(tmp_path / "df40", files, blobs)
    out = tmp_path / "out"
    import_corpus("df40", src, out, frames_per_clip=2)
    got = rows(out)
    expect = {  # name: label, kind, origin, split, source
        "DF40_train__simswap__frames__001_870__000.png": ("1", "faceswap", "ff/001", "train", "df40/simswap"),
        "DF40_train__simswap__frames__001_870__003.png": ("1", "faceswap", "ff/001", "train", "df40/simswap"),
        "DF40_train__StyleGAN2__001__seed0001.png": ("1", "stylegan", "ff/001", "train", "df40/StyleGAN2"),
        "DF40_train__wav2lip__frames__002_003__000.png": ("1", "lipsync", "ff/002", "train", "df40/wav2lip"),
        "DF40_train__Inswapper__frames__001_870__000.png": ("1", "faceswap", "ff/001", "train", "df40/inswap"),
        "DF40__simswap__cdf__frames__id0_id1_0000__000.png": ("1", "faceswap", "cdf/id0_0000", "test", "df40/simswap"),
        "DF40__simswap__ff__001_002__000.png": ("1", "faceswap", "ff/001", "test", "df40/simswap"),
        "DF40__heygen__real__clip7__000.png": ("0", "real-photo", "heygen/-/clip7", "test", "df40/heygen"),
        "DF40__heygen__fake__clip7__000.png": ("1", "talkinghead", "heygen/-/clip7", "test", "df40/heygen"),
        "DF40__MidJourney__img_9.png": ("1", "diffusion", "MidJourney/-/img_9", "test", "df40/MidJourney"),
        "DF40__sd2.1__a.mp4": ("1", "diffusion", "sd2.1/-/a", "test", "df40/sd2.1"),
    }
    assert set(got) == set(expect)  # 2 of the 4 simswap frames (the first and last), --frames-per-clip 2
    for name, (label, kind, origin, split, source) in expect.items():
        r = got[name]
        assert (r["label"], r["kind"], r["origin"], r["split"], r["source"]) == (label, kind, origin, split, source)
    assert skip_reasons(out) == {"landmarks": "auxiliary folder", "readme.md": "outside the layout",
                                 "notamethod": "unknown folder", "extra": "unknown folder"}
    assert "not imported (--frames-per-clip 2): 2 frames" in capsys.readouterr().out
    check_kit_reads(out, src)
    import_corpus("df40", src / "DF40", tmp_path / "out2")  # SRC = one release folder: method folders, no split
    got = rows(tmp_path / "out2")
    assert "split" not in next(iter(got.values())) and "simswap__ff__001_002__000.png" in got
    with pytest.raises(CorpusError, match="no DF40 method folder"):
        import_corpus("df40", src / "extra", tmp_path / "out3")
    with pytest.raises(ParameterError, match="frames_per_clip"):
        import_corpus("df40", src, tmp_path / "out4", frames_per_clip=-1)


def test_df40_kind_map_is_complete() -> None:
    assert len(datasets.DF40_METHODS) == 40
    assert set(datasets.DF40_METHODS.values()) <= set(datasets.KINDS[2:])
    assert set(datasets.FFPP_METHODS.values()) <= set(datasets.KINDS[2:])


# ------------------------------------------------------------------------------------------------------ folder


def test_folder(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    src = make_tree(tmp_path / "mine", ["real/a.png", "real/trip/b.mp4", "fake/a.png", "fake/.DS_Store", "c.png"],
                    blobs)
    out = tmp_path / "out"
    import_corpus("folder", src, out, fake_kind="diffusion")
    got = rows(out)
    assert got == {"real__a.png": {"filename": "real__a.png", "label": "0", "source": "mine", "kind": "real-photo",
                                   "origin": "real/a.png"},
                   "real__trip__b.mp4": {"filename": "real__trip__b.mp4", "label": "0", "source": "mine",
                                         "kind": "real-video", "origin": "real/trip/b.mp4"},
                   "fake__a.png": {"filename": "fake__a.png", "label": "1", "source": "mine", "kind": "diffusion",
                                   "origin": "fake/a.png"}}
    assert skip_reasons(out) == {"c.png": "outside real/ and fake/", ".DS_Store": "hidden file"}
    check_kit_reads(out, src)
    flat = make_tree(tmp_path / "flat", ["x.png", "sub/y.mp4"], blobs)
    import_corpus("folder", flat, tmp_path / "out2", label="fake", source="phone")
    got = rows(tmp_path / "out2")
    assert {(r["filename"], r["label"], r["kind"], r["source"]) for r in got.values()} == {
        ("x.png", "1", "other", "phone"), ("sub__y.mp4", "1", "other", "phone")}
    with pytest.raises(ParameterError, match="label=None.*no real/ or fake/"):
        import_corpus("folder", flat, tmp_path / "out3")
    with pytest.raises(ParameterError, match="label='real'.*give the labels"):
        import_corpus("folder", src, tmp_path / "out4", label="real")
    with pytest.raises(ParameterError, match="fake_kind"):
        import_corpus("folder", src, tmp_path / "out5", fake_kind="real-photo")


# ------------------------------------------------------------------------------------------------- OUT handling


def test_out_must_be_empty_unless_force(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    src = make_tree(tmp_path / "src", ["real/a.png", "fake/b.png"], blobs)
    out = tmp_path / "out"
    import_corpus("folder", src, out)
    with pytest.raises(ParameterError, match="not empty.*--force"):
        import_corpus("folder", src, out)
    (src / "fake" / "b.png").unlink()
    make_tree(src, ["fake/c.png"], blobs)
    import_corpus("folder", src, out, force=True)  # replaces the earlier import, stale links included
    assert sorted(p.name for p in (out / "media").iterdir()) == ["fake__c.png", "real__a.png"]
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ParameterError, match="not deleting"):
        import_corpus("folder", src, out, force=True)
    assert (out / "notes.txt").is_file() and (out / "labels.csv").is_file()
    with pytest.raises(ParameterError, match="outside SRC"):
        import_corpus("folder", src, src / "out")
    with pytest.raises(ParameterError, match="corpus='celeb'"):
        import_corpus("celeb", src, tmp_path / "o")
    with pytest.raises(ParameterError, match="link='hard'"):
        import_corpus("folder", src, tmp_path / "o", link="hard")


def test_nothing_to_import_writes_the_skips(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    src = make_tree(tmp_path / "src", ["real/notes.txt"], blobs)
    with pytest.raises(CorpusError, match="nothing to import.*not a media file 1"):
        import_corpus("folder", src, tmp_path / "out")
    assert skip_reasons(tmp_path / "out") == {"notes.txt": "not a media file"}


def test_relative_links_survive_moving_src_and_out_together(tmp_path: Path, blobs: dict[str, bytes]) -> None:
    make_tree(tmp_path / "a" / "src", ["real/x.png", "fake/y.png"], blobs)
    import_corpus("folder", tmp_path / "a" / "src", tmp_path / "a" / "out", link="relative")
    shutil.move(tmp_path / "a", tmp_path / "b")
    link = tmp_path / "b" / "out" / "media" / "fake__y.png"
    assert link.resolve() == (tmp_path / "b" / "src" / "fake" / "y.png").resolve()
    assert read_frames(link, 1).frames[0].shape == (32, 32, 3)


def test_command_line(tmp_path: Path, blobs: dict[str, bytes], capsys: pytest.CaptureFixture) -> None:
    src = make_tree(tmp_path / "ff", FFPP_FILES, blobs, FFPP_SPLITS)
    record = datasets.main(["import", "ff++", str(src), str(tmp_path / "out"), "--methods", "Deepfakes,FaceShifter",
                            "--link", "relative"])
    assert record["files"] == 7 + 3 and record["options"] == {"compression": "c23",
                                                              "methods": ["Deepfakes", "FaceShifter"], "splits": None}
    assert "imported 10 files (ff++)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="error: parameter out=.*not empty"):
        datasets.main(["import", "ff++", str(src), str(tmp_path / "out")])
    with pytest.raises(SystemExit):
        datasets.main(["import", "ff++", str(src), str(tmp_path / "o"), "--frames-per-clip", "3"])
    assert "unrecognized arguments: --frames-per-clip" in capsys.readouterr().err
    assert sorted(rows(tmp_path / "out")) == sorted(p.name for p in (tmp_path / "out" / "media").iterdir())
