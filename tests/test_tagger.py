"""Dictionary tagging: inflected forms, scope, prefixes, near-misses, user dictionaries."""

import pytest

from appliance.analysis.tagger import DictionaryError, Tagger, load_tagger, parse_dictionary


@pytest.fixture(scope="module")
def ru():
    return load_tagger("ru")


def seg(party, text, start=1.0):
    return {"party": party, "start": start, "end": start + 2, "text": text}


def tags(tagger, *segments):
    return [(t["tag"], t["party"], t["text"]) for t in tagger.tag(list(segments))]


@pytest.mark.parametrize("form", ["жалоба", "жалобу", "жалобой", "жалобы", "жалобами", "Жалобе"])
def test_inflected_forms_match(ru, form):
    assert ("complaints", "client", form) in tags(ru, seg("client", f"у меня {form} на вас"))


@pytest.mark.parametrize("text", ["жало осы", "жалюзи опущены", "дорожка", "подумать только"])
def test_near_misses_do_not_match(ru, text):
    assert [t for t in tags(ru, seg("client", text)) if t[0] in ("complaints", "objections")] == []


def test_party_scope(ru):
    # complaints are the client's; the same words from the agent are not a complaint
    assert tags(ru, seg("agent", "это безобразие")) == []
    assert tags(ru, seg("client", "это безобразие")) == [("complaints", "client", "безобразие")]
    # stop words are the agent's
    assert tags(ru, seg("client", "не знаю")) == []
    assert ("stop_words", "agent", "не знаю") in tags(ru, seg("agent", "ну не знаю"))


def test_profanity_by_root_from_any_party(ru):
    found = tags(ru, seg("agent", "да пиздец какой-то"), seg("client", "заебали уже"))
    assert ("profanity", "agent", "пиздец") in found
    assert ("profanity", "client", "заебали") in found
    assert tags(ru, seg("client", "колебались и сомневались")) == []


def test_phrases_need_every_word_in_order(ru):
    assert ("objections", "client", "у конкурентов дешевле") in tags(
        ru, seg("client", "а у конкурентов дешевле"))
    assert ("greeting", "agent", "Добрый день") in tags(ru, seg("agent", "Добрый день!"))
    assert [t for t in tags(ru, seg("agent", "день добрый был")) if t[0] == "greeting"] == []


def test_nested_matches_count_once(ru):
    found = tags(ru, seg("client", "я подумаю"))
    assert found == [("objections", "client", "я подумаю")]


def test_tag_fields(ru):
    t = ru.tag([seg("client", "Хочу оставить жалобу.", start=12.5)])[0]
    assert t == {"tag": "complaints", "dictionary": "complaints", "party": "client", "at": 12.5,
                 "phrase": "жалоба", "text": "жалобу", "severity": 2, "alert": True}


def test_user_dictionary_of_competitors(tmp_path):
    (tmp_path / "competitors.toml").write_text(
        'dictionary = "competitors"\nparty = "any"\nalert = true\n'
        'entries = ["Ромашка", { phrase = "Лютик Плюс", severity = 2 }]\n', encoding="utf-8")
    tagger = load_tagger("ru", tmp_path)
    found = tags(tagger, seg("client", "В Ромашке нам предлагали, и в Лютик Плюс тоже"))
    assert ("competitors", "client", "Ромашке") in found
    assert ("competitors", "client", "Лютик Плюс") in found


def test_english_and_auto(ru):
    en = load_tagger("en")
    assert ("objections", "client", "too expensive") in tags(en, seg("client", "It's too expensive"))
    auto = load_tagger("auto")
    both = tags(auto, seg("client", "Это дорого, too expensive"))
    assert ("objections", "client", "дорого") in both
    assert ("objections", "client", "too expensive") in both


@pytest.mark.parametrize("text, message", [
    ("entries = ['x']", "'dictionary'"),
    ("dictionary = 'x'\nentries = [{ party = 'agent' }]", "'phrase'"),
    ("dictionary = 'x'\nentries = [{ phrase = 'a', party = 'boss' }]", "party must be"),
    ("dictionary = 'x'\nentries = [{ phrase = 'a', severity = 7 }]", "severity"),
    ("dictionary = 'x'\nentries = ['a'", "not valid TOML"),
])
def test_bad_dictionary_files_are_named(text, message):
    with pytest.raises(DictionaryError, match=message):
        parse_dictionary(text, "my.toml", "ru")


def test_cost_does_not_grow_with_entries():
    """Candidate entries per word come from an index: thousands of unrelated entries add no
    checks for a word that starts none of them."""
    base = parse_dictionary("dictionary = 'a'\nentries = ['жалоба']", "a", "ru")
    many = parse_dictionary("dictionary = 'b'\nentries = [" +
                            ",".join(f"'слово{i} другое'" for i in range(5000)) + "]", "b", "ru")
    small, big = Tagger(base), Tagger(base + many)
    stems = {"ru": "жалоб"}
    assert len(small.candidates("жалобу", stems)) == len(big.candidates("жалобу", stems)) == 1
