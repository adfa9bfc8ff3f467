import json

import numpy as np
import pytest

from dnnkit.data import load_data, subset_indices
from dnnkit.data.registry import check_data_spec
from dnnkit.errors import InputError


def test_digits_split_fixed_and_disjoint():
    train, test = load_data("digits", "train"), load_data("digits", "test")
    assert len(train) == 1257 and len(test) == 540
    assert train.x.shape[1:] == (1, 8, 8) and float(train.x.max()) <= 1.0
    again = load_data("digits", "test")
    assert (again.y == test.y).all()


def test_subset_indices_deterministic():
    assert subset_indices(100, 10, 3) == subset_indices(100, 10, 3)
    assert subset_indices(100, 10, 3) != subset_indices(100, 10, 4)
    with pytest.raises(InputError):
        subset_indices(5, 10, 0)


def test_npz_and_imagefolder(tmp_path):
    from PIL import Image

    npz = tmp_path / "a.npz"
    np.savez(npz, x_train=np.zeros((6, 4, 4), dtype=np.uint8), y_train=np.arange(6) % 2,
             x_test=np.zeros((2, 4, 4), dtype=np.uint8), y_test=np.array([0, 1]))
    d = load_data(f"npz:{npz}", "train")
    assert d.x.shape == (6, 1, 4, 4)
    for cls in ("cat", "dog"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((6, 6), i * 10, dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    train = load_data(f"imagefolder:{tmp_path / 'imgs'}", "train")
    test = load_data(f"imagefolder:{tmp_path / 'imgs'}", "test")
    assert len(train) + len(test) == 10 and train.classes == ["cat", "dog"] and train.x.shape[1:] == (1, 6, 6)


def test_text_and_builtin(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("\n\n".join(f"document {i}" for i in range(20)))
    assert len(load_data(f"text:{f}", "train")) == 18
    assert len(load_data(f"text:{f}", "test")) == 2
    wiki = load_data("wiki", "test")
    assert len(wiki) > 100 and all(isinstance(t, str) for t in wiki.texts[:5])


def test_jsonl_errors_name_line(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question": "q", "answers": ["a"]}) + "\n{broken\n")
    with pytest.raises(InputError, match=":2: not valid JSON"):
        load_data(f"jsonl:{f}")
    f.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(InputError, match=":1: missing field"):
        load_data(f"jsonl:{f}")
    f.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        load_data(f"jsonl:{f}")


@pytest.mark.parametrize("spec", ["nope", "npz:/no/such.npz", "imagefolder:/no/such", "text:"])
def test_bad_specs(spec):
    with pytest.raises(InputError):
        check_data_spec(spec)


def test_missing_fashion_mnist_names_install(monkeypatch, tmp_path):
    from dnnkit.data import images

    monkeypatch.setattr(images, "FASHION_DIRS", (tmp_path,))
    with pytest.raises(InputError) as info:
        check_data_spec("fashion-mnist")
    assert "apt-get install dataset-fashion-mnist" in info.value.hint
