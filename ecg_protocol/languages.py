"""Language codes both services accept: Whisper's 100, and how a request names them.

A request's `language` is `auto` (detect among every language the model supports), one code
(`ko`), or a comma-separated list (`ko,en`: detect, but only among these). Parsing is shared so
the backend refuses an unknown code at request-process with the same words the ML server uses.
"""

from __future__ import annotations

AUTO = "auto"
# The shape of a request's `language`: `auto` or a code, each with an optional region or script
# subtag (`en-US`, `zh_Hans`), or a comma-separated list of them. A value of another shape is
# refused as malformed (422) before `parse_languages` looks its codes up (unknown: 400).
REQUEST_PATTERN = (
    r"^\s*[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})?(\s*,\s*[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})?)*\s*$"
)

# Whisper's language codes in its token order (faster-whisper `_LANGUAGE_CODES`), with names.
WHISPER_LANGUAGES: dict[str, str] = {
    "af": "Afrikaans",
    "am": "Amharic",
    "ar": "Arabic",
    "as": "Assamese",
    "az": "Azerbaijani",
    "ba": "Bashkir",
    "be": "Belarusian",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "bo": "Tibetan",
    "br": "Breton",
    "bs": "Bosnian",
    "ca": "Catalan",
    "cs": "Czech",
    "cy": "Welsh",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "eu": "Basque",
    "fa": "Persian",
    "fi": "Finnish",
    "fo": "Faroese",
    "fr": "French",
    "gl": "Galician",
    "gu": "Gujarati",
    "ha": "Hausa",
    "haw": "Hawaiian",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "ht": "Haitian Creole",
    "hu": "Hungarian",
    "hy": "Armenian",
    "id": "Indonesian",
    "is": "Icelandic",
    "it": "Italian",
    "ja": "Japanese",
    "jw": "Javanese",
    "ka": "Georgian",
    "kk": "Kazakh",
    "km": "Khmer",
    "kn": "Kannada",
    "ko": "Korean",
    "la": "Latin",
    "lb": "Luxembourgish",
    "ln": "Lingala",
    "lo": "Lao",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mg": "Malagasy",
    "mi": "Maori",
    "mk": "Macedonian",
    "ml": "Malayalam",
    "mn": "Mongolian",
    "mr": "Marathi",
    "ms": "Malay",
    "mt": "Maltese",
    "my": "Myanmar",
    "ne": "Nepali",
    "nl": "Dutch",
    "nn": "Nynorsk",
    "no": "Norwegian",
    "oc": "Occitan",
    "pa": "Punjabi",
    "pl": "Polish",
    "ps": "Pashto",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sa": "Sanskrit",
    "sd": "Sindhi",
    "si": "Sinhala",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sn": "Shona",
    "so": "Somali",
    "sq": "Albanian",
    "sr": "Serbian",
    "su": "Sundanese",
    "sv": "Swedish",
    "sw": "Swahili",
    "ta": "Tamil",
    "te": "Telugu",
    "tg": "Tajik",
    "th": "Thai",
    "tk": "Turkmen",
    "tl": "Tagalog",
    "tr": "Turkish",
    "tt": "Tatar",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "uz": "Uzbek",
    "vi": "Vietnamese",
    "yi": "Yiddish",
    "yo": "Yoruba",
    "zh": "Chinese",
    "yue": "Cantonese",
}


class LanguageError(ValueError):
    """A language request that names an unknown code or is malformed."""


def parse_languages(value: str | None) -> tuple[str, ...] | None:
    """`auto`/empty → None (detect freely); `ko` → ("ko",); `ko,en` → ("ko", "en")."""
    text = (value or "").strip().lower()
    if text in ("", AUTO):
        return None
    codes: list[str] = []
    for part in text.split(","):
        # A region or script subtag (en-US, zh_Hans) narrows nothing Whisper can tell apart.
        code = part.strip().replace("_", "-").split("-")[0]
        if not code:
            raise LanguageError(f"empty language in {value!r}")
        if code not in WHISPER_LANGUAGES:
            raise LanguageError(
                f"unknown language code {code!r}: use auto, one code (ko) or a list (ko,en)"
            )
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def canonical(value: str | None) -> str:
    """The request's language in one spelling: `auto`, `ko` or `ko,en` (raises LanguageError)."""
    codes = parse_languages(value)
    return AUTO if codes is None else ",".join(codes)
