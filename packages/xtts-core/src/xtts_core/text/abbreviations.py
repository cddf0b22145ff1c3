"""Per-language abbreviation table of the XTTS-v2 front end (what training text went through).

Each entry is ``(written form, spoken form)``; the written form is matched case-insensitively at a
word start. Every language's forms end in a dot except Russian, whose forms are whole words
(``д-р``) matched between word boundaries. Order matters: earlier entries are replaced first
(``mrs.`` before ``mr.``). Languages absent here have no abbreviations.
"""

from __future__ import annotations

ABBREVIATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
        ("mrs.", "misess"), ("mr.", "mister"), ("dr.", "doctor"), ("st.", "saint"),
        ("co.", "company"), ("jr.", "junior"), ("maj.", "major"), ("gen.", "general"),
        ("drs.", "doctors"), ("rev.", "reverend"), ("lt.", "lieutenant"), ("hon.", "honorable"),
        ("sgt.", "sergeant"), ("capt.", "captain"), ("esq.", "esquire"), ("ltd.", "limited"),
        ("col.", "colonel"), ("ft.", "fort"),
    ),
    "es": (
        ("sra.", "señora"), ("sr.", "señor"), ("dr.", "doctor"), ("dra.", "doctora"),
        ("st.", "santo"), ("co.", "compañía"), ("jr.", "junior"), ("ltd.", "limitada"),
    ),
    "fr": (
        ("mme.", "madame"), ("mr.", "monsieur"), ("dr.", "docteur"), ("st.", "saint"),
        ("co.", "compagnie"), ("jr.", "junior"), ("ltd.", "limitée"),
    ),
    "de": (
        ("fr.", "frau"), ("dr.", "doktor"), ("st.", "sankt"), ("co.", "firma"), ("jr.", "junior"),
    ),
    "pt": (
        ("sra.", "senhora"), ("sr.", "senhor"), ("dr.", "doutor"), ("dra.", "doutora"),
        ("st.", "santo"), ("co.", "companhia"), ("jr.", "júnior"), ("ltd.", "limitada"),
    ),
    "it": (
        ("sig.", "signore"), ("dr.", "dottore"), ("st.", "santo"), ("co.", "compagnia"),
        ("jr.", "junior"), ("ltd.", "limitata"),
    ),
    "pl": (
        ("p.", "pani"), ("m.", "pan"), ("dr.", "doktor"), ("sw.", "święty"), ("jr.", "junior"),
    ),
    "cs": (("dr.", "doktor"), ("ing.", "inženýr"), ("p.", "pan")),
    "ru": (("г-жа", "госпожа"), ("г-н", "господин"), ("д-р", "доктор")),
    "nl": (("dhr.", "de heer"), ("mevr.", "mevrouw"), ("dr.", "dokter"), ("jhr.", "jonkheer")),
    "tr": (("b.", "bay"), ("byk.", "büyük"), ("dr.", "doktor")),
    "hu": (("dr.", "doktor"), ("b.", "bácsi"), ("nőv.", "nővér")),
}  # fmt: skip
