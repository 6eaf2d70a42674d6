"""Keys, display names, media types and Content-Disposition values."""

from __future__ import annotations

import pytest

from junction.platform.storage import InvalidFileKey
from junction.platform.storage.files import (
    checked_key,
    content_disposition,
    content_type_of,
    display_filename,
    extension_for,
    new_key,
)
from junction.platform.storage.uploads import media_type

KEY = "uploads/2026/11/23/0123456789abcdef0123456789abcdef.png"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ana\\photo.png", "photo.png"),
        ("re\x00port\r\n.pdf", "report.pdf"),
        ("\u202egnp.exe", "gnp.exe"),
        ("  Café menu.pdf ", "Café menu.pdf"),
        ("..", KEY.rpartition("/")[2]),
        ("uploads/", KEY.rpartition("/")[2]),
        (None, KEY.rpartition("/")[2]),
    ],
)
def test_display_names_keep_no_path_or_control_characters(given: str | None, shown: str) -> None:
    assert display_filename(given, KEY) == shown


def test_long_display_names_are_cut_to_255_characters_keeping_the_extension() -> None:
    shown = display_filename("a" * 400 + ".jpeg", KEY)
    assert len(shown) == 255
    assert shown.endswith("a.jpeg")


@pytest.mark.parametrize(
    ("declared", "normal"),
    [
        ("image/jpg", "image/jpeg"),
        ("IMAGE/JPEG; charset=binary", "image/jpeg"),
        (" application/x-pdf ", "application/pdf"),
        ("image/apng", "image/png"),
        ("text/plain;charset=utf-8", "text/plain"),
    ],
)
def test_media_type_aliases_parameters_and_case_are_normalised(declared: str, normal: str) -> None:
    assert media_type(declared) == normal


@pytest.mark.parametrize(
    "content_type",
    ["image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf", "text/plain"],
)
def test_a_keys_extension_gives_its_media_type_back(content_type: str) -> None:
    key = new_key(content_type)
    assert checked_key(key) == key
    assert key.endswith(extension_for(content_type))
    assert content_type_of(key) == content_type


@pytest.mark.parametrize(
    "key",
    [
        "../secret.txt",
        "/etc/passwd",
        "uploads/../../secret.txt",
        "uploads/2026/11/23/../../../../../etc/passwd",
        f"{KEY}/../../x",
        KEY.replace("/", "\\"),
        f"/{KEY}",
        f"{KEY}\x00.txt",
        "uploads/2026/11/23/.0123456789abcdef0123456789abcdef.png.partial",
    ],
)
def test_keys_not_of_the_generated_shape_are_refused(key: str) -> None:
    with pytest.raises(InvalidFileKey) as refused:
        checked_key(key)
    assert refused.value.status_code == 404


def test_content_disposition_has_an_ascii_name_and_the_exact_one() -> None:
    assert content_disposition("photo.png") == 'attachment; filename="photo.png"'
    assert content_disposition("résumé été.pdf") == (
        'attachment; filename="resume ete.pdf"; '
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%C3%A9t%C3%A9.pdf"
    )
    assert content_disposition('say "hi" 100%.txt').startswith(
        'attachment; filename="say _hi_ 100_.txt"; filename*='
    )
    assert content_disposition("写真.png") == (
        "attachment; filename=\"download.png\"; filename*=UTF-8''%E5%86%99%E7%9C%9F.png"
    )
