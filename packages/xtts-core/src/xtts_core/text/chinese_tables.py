"""Data tables of the XTTS-v2 Chinese number normaliser (:mod:`xtts_core.text.chinese`).

They are those of the reference front end's ``zh_num2words`` (coqui-tts 0.28, itself from
chn_text_norm): the patterns decide which digits are read as money, counted things, dates or
plain digits, so they must match the reference's exactly, alternation order included.
"""

from __future__ import annotations

import string

#: Chinese digits 0-9 as the reference writes them (simplified, not the financial forms).
DIGITS = "零一二三四五六七八九"

#: ``2`` before a unit other than ten: 两百, 两千, 两万 (but 二十, and 二 in decimals).
TWO_BEFORE_UNIT = "两"

#: Written between the whole and fractional digits of a decimal.
POINT = "点"

#: The powers of ten that have their own character, largest first; 兆 and up step by 10^4
#: (the "mid" numbering system: 兆 = 亿 * 万).
UNITS: tuple[tuple[int, str], ...] = (
    (44, "载"), (40, "正"), (36, "涧"), (32, "沟"), (28, "穰"), (24, "秭"), (20, "垓"),
    (16, "京"), (12, "兆"), (8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"),
)  # fmt: skip

#: The unit of 10^1; ``2`` stays 二 next to it and a leading 一十 is read 十.
TEN = "十"

#: What may follow an amount of money (regex alternatives, in the reference's order: it decides
#: how much of ``5万元`` is taken as the amount).
CURRENCY_UNITS = (
    "(?:(?:亿|千万|百万|万|千|百)|(?:亿|千万|百万|万|千|百|)元"
    "|(?:亿|千万|百万|万|千|百|)块|角|毛|分)"
)

#: Measure words after which a number is a quantity (read with units, 十五个) rather than an
#: identifier: any one of these characters, or one of the two-character units below.
QUANTIFIER_CHARS = (
    "匹张座回场尾条个首阙阵网炮顶丘棵只支袭辆挑担颗壳窠曲墙群腔砣客贯扎捆刀令打手罗坡山岭江溪钟队"
    "单双对出口头脚板跳枝件贴针线管名位身堂课本页家户层丝毫厘分钱两斤铢石钧锱忽寸尺丈里寻常铺程撮"
    "勺合升斗盘碗碟叠桶笼盆盒杯斛锅簋篮罐瓶壶卮盏箩箱煲啖袋钵年月日季刻时周天秒旬纪岁世更夜春夏秋"
    "冬代伏辈丸泡粒幢堆根道面片块"
)
QUANTIFIER_WORDS: tuple[str, ...] = ("千克", "微克", "千米", "微米")

#: Punctuation (Chinese, from the Zhon project, and ASCII) that the normaliser turns into an
#: ASCII comma once numbers are read, so ``%``, ``$``, ``&`` and the like never reach the symbol
#: table in Chinese.
PUNCTUATION = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃《》"
    "「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏·〈〉-" + string.punctuation
)
