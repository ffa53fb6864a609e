"""PBX records: Asterisk Master.csv, the JSON API's records, FreeSWITCH json_cdr."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cdr.asterisk import decode_csv, read_master_csv
from appliance.cdr.record import CdrError, Context, from_freeswitch, normalise
from appliance.config import load_settings
from appliance.query import Queries
from appliance.store.database import Database
from storedata import at

CTX = Context.from_settings(load_settings(environ={}))

# lines 5-8 are broken on purpose: a bad date, a cut row, end before start, a bad billsec
MASTER = (Path(__file__).parent / "data" / "cdr" / "Master.csv").read_text()


def test_master_csv_good_rows_kept_bad_rows_reported_by_line():
    out = read_master_csv(MASTER, CTX)
    assert [r["from"] for r in out.rows] == ["79161234567", "79161234568", "79161234568", "101"]
    assert [line for line, _ in out.errors] == [5, 6, 7, 8]
    msgs = dict(out.errors)
    assert "start" in msgs[5] and "not a time" in msgs[5]
    assert "3 columns" in msgs[6]
    assert "end: before start" in msgs[7]
    assert "billsec" in msgs[8]
    first, queue_a, queue_b, callback = out.rows
    assert first["direction"] == "inbound" and first["agent"] == "101" and first["answered"]
    assert first["ring_s"] == 7.0 and first["talk_s"] == 120.0
    assert first["start"] == at(10, 14, 10)                         # PBX local time
    assert queue_a["agent"] == "102" and queue_b["agent"] == "103"  # from dstchannel
    assert queue_a["group"] == queue_b["group"] == "1697274000.3"   # one call, two legs
    assert queue_a["disposition"] == "no_answer" and not queue_a["answered"]
    assert callback["direction"] == "outbound" and callback["agent"] == "101"
    assert callback["client"] == "89161234568" and callback["call_id"] == "c9@pbx"


def test_master_csv_with_a_header_row_and_quoting_errors():
    text = ("calldate,src,dst,channel,dstchannel,disposition,duration,billsec,uniqueid\n"
            "2026-10-14 10:00:00,79161234567,101,SIP/trunk-1,SIP/101-2,ANSWERED,60,55,u1\n"
            "2026-10-14 10:05:00,79161234567\n")
    out = read_master_csv(text, CTX)
    assert len(out.rows) == 1 and out.rows[0]["talk_s"] == 55.0 and out.rows[0]["agent"] == "101"
    assert out.errors == [(3, "2 columns, the header has 9")]


def test_master_csv_from_a_russian_locale_pbx_is_read_as_cp1251():
    line = "2026-10-14 10:00:00,\"Иван\" <79161234567>,101,SIP/trunk-1,SIP/101-2,ANSWERED,60,55,u1\n"
    assert decode_csv(line.encode("cp1251")) == line
    assert decode_csv(line.encode("utf-8")) == line
    assert decode_csv(b"\xff\xfe\x00") == "яю\x00"        # never raises: cp1251 maps every byte


def test_json_records_are_validated_field_by_field():
    good = normalise({"id": "a", "start": "2026-10-14T10:00:00+03:00", "from": "+79161234567",
                      "to": "101", "answer": 1791961205, "billsec": 30}, CTX)
    assert good["answered"] and good["ring_s"] == 5.0 and good["client_digits"] == "79161234567"
    for bad, msg in [({"from": "1", "to": "101"}, "start: missing"),
                     ({"start": "soon", "to": "101"}, "not a time"),
                     ({"start": 1791961200}, "at least one number"),
                     ({"start": 1791961200, "to": "101", "duration": "long"}, "duration"),
                     ({"start": 1791961200, "to": "101", "from": ["x"]}, "expected text"),
                     ({"start": 1791961200, "to": "1" * 300}, "longer than"),
                     ({"start": 4102444800, "to": "101"}, "outside"),
                     ({"start": 1791961200, "to": "101", "answer": 1791961100}, "answer")]:
        with pytest.raises(CdrError, match=msg):
            normalise(bad, CTX)


def test_freeswitch_json_cdr():
    doc = {"variables": {"uuid": "u-1", "sip_call_id": "abc@fs", "caller_id_number": "79161234567",
                         "destination_number": "101", "start_epoch": "1791961200",
                         "answer_epoch": "1791961204", "end_epoch": "1791961300",
                         "billsec": "96", "hangup_cause": "NORMAL_CLEARING"}}
    row = normalise(from_freeswitch(doc), CTX, "freeswitch")
    assert row["answered"] and row["ring_s"] == 4.0 and row["call_id"] == "abc@fs"
    assert row["direction"] == "inbound" and row["agent"] == "101"


def test_api_batches_keep_good_records_and_reimports_add_nothing(tmp_path):
    db = Database(tmp_path)
    q = Queries(db, load_settings(environ={}))
    out = q.add_cdr({"records": [{"id": "1", "start": at(10, 1, 9), "from": "79160000001", "to": "101"},
                                 {"id": "2", "start": "bad", "to": "101"},
                                 "not an object"]}, "pbx")
    assert out["accepted"] == 1 and out["new"] == 1
    assert [e["index"] for e in out["errors"]] == [1, 2]
    assert q.add_cdr([{"id": "1", "start": at(10, 1, 9), "from": "79160000001", "to": "101",
                       "answer": at(10, 1, 9, 0, 3)}], "pbx")["new"] == 0     # replaced
    assert q.import_asterisk(MASTER, "admin")["new"] == 4
    again = q.import_asterisk(MASTER, "admin")
    assert again["new"] == 0 and again["accepted"] == 4 and len(again["errors"]) == 4
    db.close()
    db = Database(tmp_path)                                     # durable
    assert len(db.cdr.rows(at(10, 1, 0), at(11, 1, 0))) == 5
    with pytest.raises(CdrError, match="JSON object"):
        Queries(db, load_settings(environ={})).add_cdr("text", "pbx")
    db.close()
