"""Text front end: the BPE tokenizer (language tag, ``[SPACE]``) and its vocabulary writer."""
