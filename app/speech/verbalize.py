"""verbalize(): numbers, times, prices, dates and codes written out the way a receptionist says them.

Pure and thread-safe. Called by :func:`app.speech.canon.canon` (the one text-preparation step that
also makes the content key), after Unicode/whitespace folding and before case folding, so every
provider is handed words rather than digits and the key names exactly what is spoken.

Why: Piper (espeak-ng phonemes) reads "510-581-1274" as "five hundred ten dash five hundred
eighty-one dash ...", "$12.50" as "dollar twelve point five zero", "4:00" as "four zero zero",
"3/13" as "three slash thirteen" and "ABC123" as "A B C one hundred twenty-three".

What is rewritten (in this order; each rule only sees text no earlier rule produced):

==================  ==========================  ============================================
kind                example                      spoken
==================  ==========================  ============================================
phone number        510-581-1274, (510) 581...   five one oh, five eight one, one two seven four
price               $12.50, $1,200, $5.00        twelve dollars and fifty cents, one thousand
                                                 two hundred dollars, five dollars
time                1:15 pm, 4:00, 7.30 p.m.,    one fifteen p.m., four o'clock, seven thirty
                    14:00                        p.m., two p.m.
numeric date        3/13, 3/13/2019, 2019-03-13  march thirteenth[, twenty nineteen]
month + day         March 13th, march 13         march thirteenth
ordinal             2nd, 21st                    second, twenty first
street number       1234 Main Street, 947 Lane   twelve thirty four main street, nine forty seven
code                ABC123, 2g, # C, #4821       ABC one two three, two g, number C, number
                                                 four eight two one
long digit string   20037, 94107                 two oh oh three seven (zip codes, references)
year                2019, 1998                   twenty nineteen, nineteen ninety eight
percent             20%                          twenty percent
range               9-5, 2-3 people, 9am-5pm     nine to five, two to three people,
                                                 nine a.m. to five p.m.
plain number        3, 1,200, 4.5                three, one thousand two hundred, four point five
==================  ==========================  ============================================

Words a voice reads correctly ("3 pm", "dr.", "am/pm") are left alone except for the digits.
Numbers are written without hyphens ("twenty one"), which every provider reads the same.
"""

from __future__ import annotations

import re

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORD_WORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
             "nine": "ninth", "twelve": "twelfth"}
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"]
_MONTH_RE = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
             r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DIGIT_WORD = {str(i): _ONES[i] for i in range(10)}
_STREET = (r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|drive|dr|lane|ln|way|court|ct|place|pl"
           r"|parkway|pkwy|highway|hwy|terrace|circle|cir|square|sq|plaza|broadway|alley|row|loop)\b")


def cardinal(n: int) -> str:
    """``n`` (>= 0) in words, without hyphens or "and": 1204 -> "one thousand two hundred four"."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {cardinal(rest)}" if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return f"{cardinal(high)} {name}" + (f" {cardinal(rest)}" if rest else "")
    raise AssertionError(n)  # pragma: no cover - every n >= 1000 has a scale


def ordinal(n: int) -> str:
    """``n`` as an ordinal in words: 1 -> "first", 21 -> "twenty first", 100 -> "one hundredth"."""
    words = cardinal(n).split(" ")
    last = words[-1]
    if last in _ORD_WORD:
        words[-1] = _ORD_WORD[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def digits(text: str, zero: str = "zero") -> str:
    """Each digit of ``text`` as a word ("0" as ``zero``); other characters dropped."""
    return " ".join(zero if d == "0" else _DIGIT_WORD[d] for d in text if d.isdigit())


def year(n: int) -> str:
    """A year the way it is said: 2019 -> "twenty nineteen", 2005 -> "two thousand five", 1900 -> "nineteen hundred"."""
    if 2000 <= n <= 2009:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    return f"{cardinal(high)} " + (f"oh {_ONES[low]}" if low < 10 else cardinal(low))


def pairs(n: int) -> str:
    """A house number the way it is said: 947 -> "nine forty seven", 1234 -> "twelve thirty four",
    1001 -> "ten oh one", 2500 -> "twenty five hundred", 100 -> "one hundred"."""
    if n < 100 or n % 100 == 0 and n < 1000:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    return f"{cardinal(high)} " + (f"oh {_ONES[low]}" if low < 10 else cardinal(low))


def _number(raw: str) -> str:
    """A plain number token ("1,200", "4.5", "007") in words."""
    whole, _, frac = raw.replace(",", "").partition(".")
    if len(whole) > 1 and whole.startswith("0"):
        spoken = digits(whole)
    else:
        spoken = cardinal(int(whole)) if whole else "zero"
    if frac:
        spoken += " point " + digits(frac)
    return spoken


def _hour_minute(hour: int, minute: int, suffix: str) -> str:
    if suffix:
        suffix = "a.m." if suffix[0].lower() == "a" else "p.m."
    elif hour > 12 or hour == 0:
        # 24-hour clock: what a receptionist says is the 12-hour time
        suffix = "a.m." if hour < 12 else "p.m."
        hour = hour % 12 or 12
    spoken = cardinal(hour)
    if minute:
        spoken += " " + (f"oh {_ONES[minute]}" if minute < 10 else cardinal(minute))
    elif not suffix:
        spoken += " o'clock"
    return f"{spoken} {suffix}" if suffix else spoken


# --- the rules, in order -------------------------------------------------------------------------
_PHONE = re.compile(r"(?<![\w$.,-])(?:\+?1[-. ])?(?:\((\d{3})\)\s?|(\d{3})[-. ])(\d{3})[-. ](\d{4})(?![\w-]|[.,]\d)")
_PRICE = re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?![\d,]\d)")
_TIME = re.compile(r"(?<![\w.:/])(\d{1,2})(?::(\d{2})|\.(\d{2})(?=\s?[ap]\.?m\b))(?:\s?([ap])\.?m\b\.?)?(?![\w:/]|\.\d)",
                   re.IGNORECASE)
_HOUR_SUFFIX = re.compile(r"(?<![\w.:/])(\d{1,2})\s?([ap])\.?m\b\.?", re.IGNORECASE)
_NUM_DATE = re.compile(r"(?<![\w/.-])(?:(\d{4})-(\d{1,2})-(\d{1,2})|(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?)(?![\w/]|[.-]\d)")
_RANGE = re.compile(r"(?<![\w.,$/-])(\d+(?:\.\d+)?)\s?-\s?(?=\d)")
_SUFFIX_RANGE = re.compile(r"([ap]\.m\.|o'clock)\s?-\s?(?=\w)", re.IGNORECASE)
_MONTH_DAY = re.compile(r"\b(" + _MONTH_RE + r")\.?\s+(\d{1,2})(st|nd|rd|th)?\b(?:,?\s+(\d{4})\b)?", re.IGNORECASE)
_ORDINAL = re.compile(r"(?<![\w.])(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_STREET_NUMBER = re.compile(r"(?<![\w.,$#/-])(\d{3,4})(?=\s+(?:\S+\s+){0,3}?" + _STREET + ")", re.IGNORECASE)
_HASH = re.compile(r"#\s?(?:(\d+)(?![A-Za-z])|(?=[A-Za-z]))")
_CODE = re.compile(r"(?<![\w'])(?=[A-Za-z]*\d)(?=\d*[A-Za-z])([A-Za-z0-9]{2,})(?![\w'])")
_LONG_DIGITS = re.compile(r"(?<![\w.,])\d{5,}(?![\w]|[.,]\d)")
_YEAR = re.compile(r"(?<![\w.,$])(19\d{2}|20\d{2})(?![\w]|[.,]\d)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_PLAIN = re.compile(r"(?<![\w])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w]|[.,]\d)")


def _phone(m: re.Match[str]) -> str:
    area = m.group(1) or m.group(2)
    return f"{digits(area, 'oh')}, {digits(m.group(3), 'oh')}, {digits(m.group(4), 'oh')}"


def _price(m: re.Match[str]) -> str:
    dollars = int(m.group(1).replace(",", ""))
    cents = int((m.group(2) or "0").ljust(2, "0"))
    spoken = f"{cardinal(dollars)} dollar{'' if dollars == 1 else 's'}"
    if cents:
        spoken += f" and {cardinal(cents)} cent{'' if cents == 1 else 's'}"
    return spoken


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2) or m.group(3))
    if hour > 23 or minute > 59:
        return m.group(0)
    return _hour_minute(hour, minute, m.group(4) or "")


def _hour_suffix(m: re.Match[str]) -> str:
    hour = int(m.group(1))
    if not 1 <= hour <= 12:
        return m.group(0)
    return _hour_minute(hour, 0, m.group(2))


def _month_day(month: int, day: int, yr: str | None) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    spoken = f"{_MONTHS[month - 1]} {ordinal(day)}"
    if yr:
        y = int(yr)
        spoken += f", {year(y if len(yr) == 4 else 2000 + y)}"
    return spoken


def _num_date(m: re.Match[str]) -> str:
    if m.group(1):
        spoken = _month_day(int(m.group(2)), int(m.group(3)), m.group(1))
    else:
        spoken = _month_day(int(m.group(4)), int(m.group(5)), m.group(6))
    return spoken if spoken is not None else m.group(0)


def _month_name_day(m: re.Match[str]) -> str:
    name = m.group(1).lower()
    month = next(i for i, full in enumerate(_MONTHS, 1) if full.startswith(name[:3]))
    day = int(m.group(2))
    if not 1 <= day <= 31 or (m.group(1) == "may" and not m.group(3)):  # "you may 2 ..." is not a date
        return m.group(0)
    spoken = f"{m.group(1) if name == _MONTHS[month - 1] else _MONTHS[month - 1]} {ordinal(day)}"
    return spoken + (f", {year(int(m.group(4)))}" if m.group(4) else "")


def _code(m: re.Match[str]) -> str:
    token = m.group(1)
    parts = re.findall(r"\d+|[A-Za-z]+", token)
    return " ".join(digits(p) if p.isdigit() else p for p in parts)


def verbalize(text: str) -> str:
    """``text`` with numbers, times, prices, dates, ordinals and codes written out as words.

    Text without a digit, "$", "%" or "#" is returned unchanged (so keys of such text do not move).
    """
    if not any(c.isdigit() or c in "$%#" for c in text):
        return text
    text = _PHONE.sub(_phone, text)
    text = _PRICE.sub(_price, text)
    text = _TIME.sub(_time, text)
    text = _HOUR_SUFFIX.sub(_hour_suffix, text)
    text = _NUM_DATE.sub(_num_date, text)
    text = _SUFFIX_RANGE.sub(lambda m: f"{m.group(1)} to ", text)
    text = _RANGE.sub(lambda m: f"{m.group(1)} to ", text)
    text = _MONTH_DAY.sub(_month_name_day, text)
    text = _ORDINAL.sub(lambda m: ordinal(int(m.group(1))), text)
    text = _STREET_NUMBER.sub(lambda m: pairs(int(m.group(1))), text)
    text = _HASH.sub(lambda m: "number " + (digits(m.group(1)) if m.group(1) else ""), text)
    text = _CODE.sub(_code, text)
    text = _LONG_DIGITS.sub(lambda m: digits(m.group(0), "oh"), text)
    text = _YEAR.sub(lambda m: year(int(m.group(1))), text)
    text = _PERCENT.sub(lambda m: f"{m.group(1)} percent", text)
    text = _PLAIN.sub(lambda m: _number(m.group(0)), text)
    return text


__all__ = ["cardinal", "digits", "ordinal", "pairs", "verbalize", "year"]
