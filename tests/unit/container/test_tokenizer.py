import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference_container.engine import tokenizer as tok


def test_standard_clip_ids(clip_tokenizer):
    assert clip_tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_vocabulary_has_clip_size_and_specials(clip_tokenizer):
    assert len(clip_tokenizer) == 49408
    assert clip_tokenizer.bos_token_id == 49406
    assert clip_tokenizer.eos_token_id == 49407
    assert clip_tokenizer.model_max_length == 77


def test_clip_flavour_pads_with_end_of_text(clip_tokenizer):
    ids = clip_tokenizer("a cat", padding="max_length").input_ids
    assert len(ids) == 77
    assert ids[:4] == [49406, 320, 2368, 49407]
    assert set(ids[4:]) == {49407}


def test_open_clip_flavour_pads_with_exclamation_mark(engine_work_dir):
    open_clip_tokenizer = tok.load_clip_tokenizer("open_clip", engine_work_dir / "clip-tokenizer")
    ids = open_clip_tokenizer("a cat", padding="max_length").input_ids
    assert open_clip_tokenizer.pad_token == "!"
    assert ids[:4] == [49406, 320, 2368, 49407]
    assert set(ids[4:]) == {0}


def test_comma_is_a_single_token(clip_tokenizer):
    assert clip_tokenizer("a, b", add_special_tokens=False).input_ids == [320, 267, 321]
    assert clip_tokenizer.get_vocab()[",</w>"] == 267


def test_byte_table_is_a_bijection_in_clip_order():
    table = tok.bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    # CLIP's vocabulary starts with the printable characters, "!" first: the pad id 0 of OpenCLIP.
    assert list(table.values())[0] == "!"
    assert all(not ch.isspace() for ch in table.values())


def test_vocab_and_merges_match_clip_layout():
    merges = tok.read_merges(tok.find_bpe_file())
    vocab = tok.build_vocab(merges)
    assert len(merges) == 48894
    assert len(vocab) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["a</w>"] == 320


def test_folder_is_built_once_and_reused(tmp_path):
    first = tok.tokenizer_folder("clip", tmp_path)
    stamp = (first / "vocab.json").stat().st_mtime_ns
    second = tok.tokenizer_folder("clip", tmp_path)
    assert first == second
    assert (second / "vocab.json").stat().st_mtime_ns == stamp
    config = json.loads((first / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 77 and config["pad_token"] == "<|endoftext|>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]  # no staging leftovers


def test_finding_the_merges_file_does_not_import_open_clip():
    code = (
        "import sys\n"
        "from inference_container.engine.tokenizer import find_bpe_file\n"
        "path = find_bpe_file()\n"
        "assert path.name == 'bpe_simple_vocab_16e6.txt.gz', path\n"
        "assert 'open_clip' not in sys.modules\n"
        "assert 'torchvision' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


def test_override_path_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("SDCLOUD_CLIP_BPE_PATH", str(tmp_path / "missing.txt.gz"))
    with pytest.raises(tok.TokenizerUnavailable, match="SDCLOUD_CLIP_BPE_PATH"):
        tok.find_bpe_file()


def test_a_file_that_is_not_a_merges_file_is_rejected(tmp_path):
    import gzip

    bad = tmp_path / "bpe.txt.gz"
    with gzip.open(bad, "wt") as f:
        f.write("#version: 0.2\nonly one line\n")
    with pytest.raises(tok.TokenizerUnavailable, match="not a CLIP merges file"):
        tok.read_merges(bad)
