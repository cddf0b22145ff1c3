"""Text front end: normalisation (numbers, abbreviations, symbols), the BPE tokenizer (language
tag, ``[SPACE]``) and its vocabulary writer, and the ``<break>``/SSML markup reader."""
