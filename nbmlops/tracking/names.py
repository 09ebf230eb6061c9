"""Friendly run names, like ``calm-otter-3f2``: easier to say than an id."""

_ADJ = ("amber", "bold", "brisk", "calm", "clever", "crisp", "daring", "eager", "fancy", "gentle", "glad",
        "happy", "jolly", "keen", "lively", "lucky", "merry", "nimble", "proud", "quick", "quiet", "rapid",
        "shiny", "smart", "sunny", "swift", "tidy", "vivid", "warm", "witty", "young", "zesty")
_NOUN = ("otter", "falcon", "badger", "heron", "lynx", "marten", "panda", "puffin", "raven", "seal", "tiger",
         "wombat", "yak", "zebra", "bison", "crane", "dingo", "eagle", "ferret", "gecko", "hare", "ibis",
         "koala", "lemur", "moose", "newt", "owl", "quail", "robin", "stoat", "toucan", "walrus")


def random_name(run_id: str) -> str:
    n = int(run_id[:8], 16)
    return f"{_ADJ[n % len(_ADJ)]}-{_NOUN[(n >> 5) % len(_NOUN)]}-{run_id[8:11]}"
