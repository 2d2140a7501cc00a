#!/usr/bin/env python3
"""Generate tests/corpus/robustness.jsonl: a labelled robustness corpus for the classifier.

Deterministic (fixed seed, standard library only): running it twice writes byte-identical
output. Every line has the shape of shared/corpus/pii-dev.jsonl plus a `category`:

    {"id": "rb-0001", "category": "boundary/markdown_bold/aadhaar", "text": "...",
     "entities": [{"type": "aadhaar", "start": 47, "end": 61, "value": "..."}],
     "tier": "restricted"}

`start`/`end` are UTF-8 byte offsets into `text` (end exclusive). Labels follow
shared/spec/sensitivity.md ("Settled cases"); where the spec is silent the choices are
listed in NOTES below.

Self-checks (each line, before it is written):
  * every gold value is `text.encode()[start:end].decode()`, spans sorted, no overlap;
  * `tier` is the highest tier of the gold entities;
  * an independent reference scanner (`oracle`, written from the spec: NFKC + format
    characters ignored, digit groups joined by the spec's separators, checksums, the
    boundary rule) must find every gold entity at exactly its span, and must find
    nothing else that is not either covered by a longer-or-equal gold span or marked by
    the generator as a deliberate negative (an order number that looks like a mobile,
    a version that looks like an IP, ...). A second, looser digit scan (any grouping)
    must find nothing unlabelled either, so traps are not accidentally valid numbers.
  A random draw that fails is drawn again (deterministically); a template that can never
  pass raises.

NOTES (choices where the spec is silent or the case is delicate):
  * `_v_` around an e-mail or UPI id: `_` is a boundary (spec), so the span starts at
    the first letter/digit of the local part, not at the underscore.
  * A value glued to a letter *through* an invisible character (`PAN\u200bABCPE1234F`)
    is glued: format characters are ignored "as if absent" (category
    invisible/glued_through_invisible, no entity).
  * Glued negatives are not generated for e-mail (gluing only changes the address) and
    only on the right for UPI (a glued letter/digit changes the PSP handle).
  * Phones are labelled only in the spec's forms (10 digits, 5-5, +91/91/0 prefix with
    an optional space or hyphen); 3-3-4 groupings are not used.
  * A 10-digit 6-9 number labelled `office`, `tel`, `fax` or `landline` is not a phone
    (spec); bank accounts never take a form that is also a phone, Aadhaar, VID, card or
    ABHA, so the "not another entity" rule never decides a label.
  * Driving licences mostly in the spec's form (`MH12 20110012345`, `MH12-2011...`,
    `MH1220110012345`); a few in the `KA-05-2015-1234567` form that the repository's
    held-out table accepts.
  * STD-code landlines include 4-digit codes starting 07/08 (`0891 303 2830`, `0712 ...`):
    written as STD code + subscriber number, so a landline (spec), although the digits
    after the 0 start with 7/8. `+91 80 2345 6789` (country code + STD code) is a landline.
  * Foreign numbers (`+44 20 ...`, `+65 6123 4567`, `+1 415 ...`) are not phones.
  * SQL `INSERT ... (cols) VALUES (...)` never carries a bank account or a bare ABHA: the
    column name is far from its value and the spec's table rule names only markdown, CSV
    and TSV. JSON/YAML/XML/HTML/log keys sit right before their values and do count.
  * A Hindi (Devanagari) "order" label is not relied on: Devanagari negatives use numbers
    that are not mobile-shaped. Romanised `order no`/`AWB` in Hinglish do count as labels.
  * Hyphenated ISBNs contain a 10-digit run starting 8/9 in a grouping no type uses
    (`93-7752-603-0`): public.
  * A passport number in a passport MRZ line (`J8369854<5IND...`) is labelled: `<` is a
    boundary.
  * Version words: `v`, `ver`, `ver.`, `version`, `Version:`, `build` right before a dotted
    quad make it a version. CIDR suffixes (`/24`) are not used.
  * Unknown UPI handles used with a UPI word: mybank, coopbank, citypsp, gramin, newpay,
    mypsp, villagebank; handles used as non-UPI: latest, next, beta, canary, localhost,
    github, gitlab, devbox, staging, stable, intranet.
"""

import collections
import ipaddress
import json
import os
import random
import re
import sys
import unicodedata

SEED = 20261202
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "robustness.jsonl")

TYPES = [
    "aadhaar", "aadhaar_vid", "payment_card", "bank_account", "upi_id", "abha",
    "pan", "passport", "voter_id", "driving_licence", "phone", "email",
    "gstin", "ifsc", "vehicle_registration", "ip_address",
]
TIER_OF = {
    "aadhaar": "restricted", "aadhaar_vid": "restricted", "payment_card": "restricted",
    "bank_account": "restricted", "upi_id": "restricted", "abha": "restricted",
    "pan": "confidential", "passport": "confidential", "voter_id": "confidential",
    "driving_licence": "confidential", "phone": "confidential", "email": "confidential",
    "gstin": "internal", "ifsc": "internal", "vehicle_registration": "internal",
    "ip_address": "internal",
}
TIERS = ["public", "internal", "confidential", "restricted"]

# --------------------------------------------------------------------------------------
# Checksums and value generators
# --------------------------------------------------------------------------------------

_VD = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VP = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2], [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]
_VINV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_ok(s):
    c = 0
    for i, ch in enumerate(reversed(s)):
        c = _VD[c][_VP[i % 8][int(ch)]]
    return c == 0


def verhoeff_digit(s):
    c = 0
    for i, ch in enumerate(reversed(s)):
        c = _VD[c][_VP[(i + 1) % 8][int(ch)]]
    return str(_VINV[c])


def luhn_ok(s):
    total = 0
    for i, ch in enumerate(reversed(s)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_digit(s):
    for d in "0123456789":
        if luhn_ok(s + d):
            return d
    raise AssertionError


def card_prefix(s):
    if s[:1] == "4":
        return True
    p2, p3, p4 = int(s[:2]), int(s[:3]), int(s[:4])
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return True
    if p2 in (34, 37, 60, 65, 81, 82, 36, 38, 35, 64):
        return True
    return p3 == 508 or p4 == 6011


def card_valid(d):
    return 13 <= len(d) <= 19 and card_prefix(d) and luhn_ok(d)


B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def gstin_check(s14):
    total = 0
    for i, c in enumerate(s14):
        p = B36.index(c) * (1 if i % 2 == 0 else 2)
        total += p // 36 + p % 36
    return B36[(36 - total % 36) % 36]


PAN_HOLDER = "ABCFGHJLPT"
STATE_CODES = [
    "AN", "AP", "AR", "AS", "BR", "CG", "CH", "DD", "DL", "DN", "GA", "GJ", "HP", "HR",
    "JH", "JK", "KA", "KL", "LA", "LD", "MH", "ML", "MN", "MP", "MZ", "NL", "OD", "OR",
    "PB", "PY", "RJ", "SK", "TN", "TR", "TS", "UK", "UP", "WB", "UA", "BH",
]
COMMON_STATES = ["MH", "KA", "DL", "TN", "GJ", "UP", "WB", "TS", "AP", "KL", "RJ", "PB",
                 "HR", "MP", "OD", "BR", "AS", "CG", "JH", "UK", "HP", "GA", "JK", "CH"]
FAKE_STATES = ["XZ", "QA", "ZP", "IQ", "YY", "VX", "QM", "ZT"]
VOTER_DENY = ["INV", "ORD", "REF", "TKT", "TXN", "SKU", "PNR", "UTR", "REQ", "INC", "CHG",
              "BUG", "SRN", "CRN", "AWB", "RMA"]
UPI_KNOWN = ["okaxis", "okhdfcbank", "okicici", "oksbi", "ybl", "ibl", "axl", "paytm",
             "apl", "upi"]
UPI_UNKNOWN = ["mybank", "coopbank", "citypsp", "gramin", "newpay", "mypsp", "villagebank"]
NOT_PSP = ["latest", "next", "beta", "canary", "localhost", "github", "gitlab", "devbox",
           "staging", "stable", "intranet", "buildbox", "bitbucket", "rc"]
IFSC_BANKS = ["SBIN", "HDFC", "ICIC", "UTIB", "KKBK", "CNRB", "BARB", "PUNB", "UBIN",
              "IDIB", "IDFB", "FDRL", "YESB", "INDB", "BKID", "CBIN", "UCBA", "KARB",
              "SIBL", "SRCB", "IOBA", "MAHB"]
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIG = "0123456789"


def rdigits(rng, n, first=DIG):
    return rng.choice(first) + "".join(rng.choice(DIG) for _ in range(n - 1))


def gen_aadhaar(rng):
    while True:
        b = rdigits(rng, 11, "23456789")
        d = b + verhoeff_digit(b)
        if d.startswith("91") and d[2] in "6789":
            continue  # would also be a 91-prefixed mobile: kept for category tie only
        return d


def gen_vid(rng):
    while True:
        b = rdigits(rng, 15, "123456789")
        d = b + verhoeff_digit(b)
        if not card_valid(d):
            return d


NETWORKS = {
    "visa": (["4"], [16, 16, 16, 13, 19]),
    "mastercard": (["51", "52", "53", "54", "55", "2221", "2347", "2500", "2720"], [16]),
    "amex": (["34", "37"], [15]),
    "rupay": (["60", "65", "81", "82", "508"], [16]),
    "diners": (["36", "38"], [14]),
    "jcb": (["35"], [16]),
    "discover": (["6011", "64", "65"], [16]),
}
CARD_LABELS = {
    "visa": ["Visa card", "Visa", "credit card", "debit card", "card"],
    "mastercard": ["Mastercard", "credit card", "card", "debit card"],
    "amex": ["Amex", "Amex card", "credit card", "card"],
    "rupay": ["RuPay card", "RuPay debit card", "card", "debit card"],
    "diners": ["Diners card", "Diners Club card", "card"],
    "jcb": ["JCB card", "card", "credit card"],
    "discover": ["Discover card", "card", "credit card"],
}


def gen_card(rng, network=None, length=None):
    network = network or rng.choice(list(NETWORKS))
    prefixes, lengths = NETWORKS[network]
    n = length or rng.choice(lengths)
    while True:
        p = rng.choice(prefixes)
        b = p + "".join(rng.choice(DIG) for _ in range(n - 1 - len(p)))
        d = b + luhn_digit(b)
        if n == 16 and verhoeff_ok(d):
            continue  # would also be a VID
        return d, network


def gen_abha(rng):
    while True:
        first = rng.choice(["91", "91", "91", rdigits(rng, 2, "123456789")])
        d = first + "".join(rng.choice(DIG) for _ in range(12))
        if not card_valid(d):
            return d


def gen_phone(rng):
    return rdigits(rng, 10, "6789")


def bank_ok(d):
    n = len(d)
    if not 9 <= n <= 18:
        return False
    if n == 10 and d[0] in "6789":
        return False
    if n == 11 and d[0] == "0" and d[1] in "6789":
        return False
    if n == 12 and (d.startswith("91") and d[2] in "6789"):
        return False
    if n == 12 and d[0] in "23456789" and verhoeff_ok(d):
        return False
    if n == 16 and verhoeff_ok(d):
        return False
    if card_valid(d):
        return False
    return True


def gen_bank(rng, length=None):
    while True:
        n = length or rng.choice([9, 10, 11, 11, 12, 12, 13, 14, 14, 15, 16, 17, 18])
        kind = rng.random()
        if kind < 0.3:
            d = "0" + rdigits(rng, n - 1)
        elif kind < 0.45 and n == 14:
            d = "50100" + rdigits(rng, 9)
        elif kind < 0.6 and n == 11:
            d = rng.choice(["3", "2", "1"]) + rdigits(rng, 10)
        else:
            d = rdigits(rng, n, "123456789")
        if bank_ok(d):
            return d


def gen_pan(rng, holder=None):
    return ("".join(rng.choice(UPPER) for _ in range(3)) + (holder or rng.choice("PPPPCFHABTGJL"))
            + rng.choice(UPPER) + rdigits(rng, 4) + rng.choice(UPPER))


def gen_passport(rng):
    return rng.choice("ABCDEFGHJKLMNPRSTUVWZ") + rdigits(rng, 7, "123456789")


def gen_voter(rng):
    while True:
        p = "".join(rng.choice(UPPER) for _ in range(3))
        if p not in VOTER_DENY:
            return p + rdigits(rng, 7)


def gen_dl(rng, style=None):
    st = rng.choice(COMMON_STATES)
    rto = "%02d" % rng.randint(1, 60)
    year = str(rng.randint(1988, 2024))
    num = rdigits(rng, 7)
    style = style or rng.choice(["space", "space", "hyphen", "none", "none", "dashes"])
    if style == "space":
        return f"{st}{rto} {year}{num}"
    if style == "hyphen":
        return f"{st}{rto}-{year}{num}"
    if style == "none":
        return f"{st}{rto}{year}{num}"
    return f"{st}-{rto}-{year}-{num}"


def gen_vehicle(rng, style=None):
    st = rng.choice(COMMON_STATES)
    rto = "%02d" % rng.randint(1, 60)
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(rng.choice([1, 2, 2, 2, 3])))
    num = "%04d" % rng.randint(1, 9999)
    style = style or rng.choice(["none", "space", "hyphen", "mixed", "none", "space"])
    if style == "none":
        return f"{st}{rto}{letters}{num}"
    if style == "space":
        return f"{st} {rto} {letters} {num}"
    if style == "hyphen":
        return f"{st}-{rto}-{letters}-{num}"
    return rng.choice([f"{st}{rto} {letters} {num}", f"{st}-{rto} {letters}-{num}",
                       f"{st} {rto}{letters}{num}", f"{st}{rto}-{letters}{num}"])


def gen_ifsc(rng):
    tail = rdigits(rng, 6) if rng.random() < 0.75 else "".join(rng.choice(UPPER + DIG) for _ in range(6))
    return rng.choice(IFSC_BANKS) + "0" + tail


def gen_gstin(rng):
    state = "%02d" % rng.randint(1, 38)
    pan = gen_pan(rng, holder=rng.choice("CCFFPPHATGJL"))
    s14 = state + pan + rng.choice("1111223456789AB") + "Z"
    return s14 + gstin_check(s14)


def gen_ipv4(rng):
    kind = rng.random()
    if kind < 0.25:
        return "10.%d.%d.%d" % (rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
    if kind < 0.45:
        return "192.168.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254))
    if kind < 0.55:
        return "172.%d.%d.%d" % (rng.randint(16, 31), rng.randint(0, 255), rng.randint(1, 254))
    return "%d.%d.%d.%d" % (rng.choice([rng.randint(1, 223), rng.randint(11, 99)]), rng.randint(0, 255),
                            rng.randint(0, 255), rng.randint(1, 254))


def _h(rng, lo=1, hi=4):
    n = rng.randint(lo, hi)
    s = "%x" % rng.randint(1, 16 ** n - 1)
    return s


def gen_ipv6(rng):
    kind = rng.randint(0, 5)
    if kind == 0:
        return "2001:db8::" + _h(rng)
    if kind == 1:
        return "fe80::%s:%s:%s:%s" % (_h(rng), _h(rng), _h(rng), _h(rng, 3, 4))
    if kind == 2:
        return ":".join(["2001", "db8"] + [_h(rng) for _ in range(6)])
    if kind == 3:
        return "2406:%s:%s::%s" % (_h(rng, 3, 4), _h(rng), _h(rng, 2, 4))
    if kind == 4:
        return "2405:%s:%s:%s::%s" % (_h(rng, 3, 4), _h(rng), _h(rng), _h(rng, 1, 4))
    return "2001:%s::%s:%s" % (_h(rng, 3, 4), _h(rng), _h(rng, 2, 4))


def gen_ip(rng):
    return gen_ipv6(rng) if rng.random() < 0.3 else gen_ipv4(rng)


FIRST = """Aarav Ananya Rohan Priya Imran Farhan Gurpreet Harpreet Lakshmi Venkatesh Suresh Meera
Kavya Deepa Arjun Vikram Sneha Pooja Rahul Neha Sanjay Anil Sunita Rekha Mohammed Ayesha Fatima
Joseph Mary Thomas Anjali Bhavna Chirag Dhruv Esha Gaurav Hemant Ishaan Jaya Karthik Lalit Manish
Nandini Omkar Parvati Rakesh Shalini Tanvi Uday Varun Yamini Zoya Abhishek Bhaskar Chitra
Debashish Gopal Indira Jagdish Kiran Madhuri Naveen Prakash Ritu Sarita Tushar Usha Vandana Wasim
Yusuf Ravi Ramesh Ganesh Sundar Balaji Murugan Selvi Anbu Bijoy Sourav Tanushree Rituparna Pranav
Sai Lavanya Nikhil Aditi Shreya Kunal Rajat Sakshi Jasleen Manpreet Tenzin Zubin Farida Asha
Nilesh Swati Aniket Ketan Hina Salma Irfan Jyoti Mahesh Shankar Vijaya Padma Girish Rupali""".split()
LAST = """Sharma Verma Iyer Iyengar Nair Menon Pillai Reddy Rao Naidu Patel Shah Mehta Desai Joshi
Kulkarni Deshpande Patil Chavan Singh Gill Sandhu Kaur Khan Qureshi Siddiqui Ansari Das Ghosh
Banerjee Chatterjee Mukherjee Bose Sen Roy Gupta Agarwal Bansal Jain Mishra Tiwari Pandey Yadav
Chauhan Rathore Thakur Fernandes Pereira Rodrigues Kumar Krishnan Subramanian Hegde Shetty Kamath
Bhat Gowda Sethi Malhotra Kapoor Khanna Chopra Saxena Srivastava Dubey Borah Baruah Lepcha
Dsouza Kohli Wadia Bhatt Parekh Trivedi Nambiar Kurian Varghese Lal Prasad Sinha""".split()
CITIES = """Mumbai Pune Nagpur Nashik Bengaluru Mysuru Mangaluru Chennai Coimbatore Madurai Hyderabad
Warangal Vijayawada Visakhapatnam Kochi Thiruvananthapuram Kozhikode Ahmedabad Surat Vadodara
Rajkot Jaipur Jodhpur Udaipur Lucknow Kanpur Varanasi Prayagraj Noida Gurugram Delhi Chandigarh
Ludhiana Amritsar Kolkata Siliguri Guwahati Shillong Bhubaneswar Cuttack Patna Ranchi Bhopal
Indore Raipur Dehradun Shimla Srinagar Jammu Panaji Puducherry Agartala Imphal Aizawl Gangtok
Thrissur Hubballi Belagavi Aurangabad Kolhapur Solapur Tirupati Nellore Salem Erode""".split()
BANKS = ["SBI", "HDFC Bank", "ICICI Bank", "Axis Bank", "Kotak", "Canara Bank", "Bank of Baroda",
         "PNB", "Union Bank", "Indian Bank", "IDFC First", "Federal Bank", "Yes Bank", "IndusInd",
         "Bank of India", "Central Bank", "UCO Bank", "Karnataka Bank", "South Indian Bank",
         "Saraswat Bank", "Indian Overseas Bank", "Bank of Maharashtra"]
DOMAINS = ["gmail.com", "yahoo.co.in", "yahoo.com", "outlook.com", "hotmail.com", "rediffmail.com",
           "protonmail.com", "icloud.com", "example.in", "example.org", "mail.example.com",
           "acme-india.in", "sunrisehospital.org", "kirana.co.in", "nic.example.gov.in",
           "startup.io", "college.edu.in", "zoho.example.com", "fintech.example.co"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
COMPANIES = ["Shree Ganesh Traders", "Lotus Pharma", "Sahyadri Logistics", "Kaveri Textiles",
             "Nilgiri Foods", "Deccan Motors", "Ganga Steel", "Himalaya Hardware", "Sunrise Clinic",
             "Bluechip Infotech", "Annapurna Caterers", "Vindhya Cements", "Coastal Seafoods",
             "Marwar Handicrafts", "Brahmaputra Tea Co", "Konark Electricals"]
EMOJI = ["📞", "📱", "✅", "❌", "👉", "🙏", "🔒", "💳", "🏦", "🪪", "📧", "🚗", "🌐", "⚠️", "👍🏽",
         "🔐", "📝", "📌", "🧾", "💰", "😊", "🤔", "👇", "🔥", "👩‍💻", "☎️"]
for _e in EMOJI:
    assert unicodedata.normalize("NFKC", _e) == _e and not any(c.isalnum() for c in _e), _e


def fullname(rng):
    return rng.choice(FIRST) + " " + rng.choice(LAST)


def gen_email(rng):
    f, l = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
    local = rng.choice([f, f + "." + l, f + "_" + l, f + l[0], f[0] + l, f + str(rng.randint(1, 99)),
                        f + "." + l + str(rng.randint(1, 9)), l + "." + f, f + "-" + l])
    return local + "@" + rng.choice(DOMAINS)


def gen_upi(rng, psp=None):
    f, l = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
    local = rng.choice([f, f + "." + l, f + l, f + str(rng.randint(1, 999)), gen_phone(rng), f + "-" + l[:3]])
    return local + "@" + (psp or rng.choice(UPI_KNOWN))


# --------------------------------------------------------------------------------------
# Formatting of numbers
# --------------------------------------------------------------------------------------

def group(d, sizes, seps):
    out, i = [], 0
    for k, n in enumerate(sizes):
        if k:
            out.append(seps[k - 1] if isinstance(seps, list) else seps)
        out.append(d[i:i + n])
        i += n
    assert i == len(d), (d, sizes)
    return "".join(out)


def fmt_aadhaar(rng, d, style=None):
    style = style or rng.choice(["sp", "sp", "hy", "bare"])
    return {"sp": group(d, [4, 4, 4], " "), "hy": group(d, [4, 4, 4], "-"), "bare": d}[style]


def fmt_vid(rng, d, style=None):
    style = style or rng.choice(["sp", "hy", "bare"])
    return {"sp": group(d, [4, 4, 4, 4], " "), "hy": group(d, [4, 4, 4, 4], "-"), "bare": d}[style]


def card_groups(n):
    return {13: [13], 14: [4, 6, 4], 15: [4, 6, 5], 16: [4, 4, 4, 4], 19: [4, 4, 4, 4, 3]}[n]


def fmt_card(rng, d, style=None):
    style = style or rng.choice(["sp", "sp", "hy", "bare"])
    if style == "bare" or len(d) == 13:
        return d
    return group(d, card_groups(len(d)), " " if style == "sp" else "-")


def fmt_abha(rng, d, style=None):
    style = style or rng.choice(["hy", "hy", "sp", "bare"])
    return {"hy": group(d, [2, 4, 4, 4], "-"), "sp": group(d, [2, 4, 4, 4], " "), "bare": d}[style]


def fmt_phone(rng, d, style=None):
    style = style or rng.choice(["bare", "sp", "hy", "p91", "p91sp", "p91hy", "p91sp55", "p91hy55",
                                 "z", "zsp55", "g91"])
    if style == "g91":
        if verhoeff_ok("91" + d):
            style = "p91"
        else:
            return "91" + d
    return {
        "bare": d, "sp": d[:5] + " " + d[5:], "hy": d[:5] + "-" + d[5:], "p91": "+91" + d,
        "p91sp": "+91 " + d, "p91hy": "+91-" + d, "p91sp55": "+91 " + d[:5] + " " + d[5:],
        "p91hy55": "+91-" + d[:5] + "-" + d[5:], "z": "0" + d, "zsp55": "0 " + d[:5] + " " + d[5:],
    }[style]


def value_of(rng, t):
    """A random, valid, plainly formatted value of type t (and for cards the network)."""
    if t == "aadhaar":
        return fmt_aadhaar(rng, gen_aadhaar(rng))
    if t == "aadhaar_vid":
        return fmt_vid(rng, gen_vid(rng))
    if t == "payment_card":
        d, _ = gen_card(rng)
        return fmt_card(rng, d)
    if t == "bank_account":
        return gen_bank(rng)
    if t == "upi_id":
        return gen_upi(rng)
    if t == "abha":
        return fmt_abha(rng, gen_abha(rng))
    if t == "pan":
        return gen_pan(rng)
    if t == "passport":
        return gen_passport(rng)
    if t == "voter_id":
        return gen_voter(rng)
    if t == "driving_licence":
        return gen_dl(rng)
    if t == "phone":
        return fmt_phone(rng, gen_phone(rng))
    if t == "email":
        return gen_email(rng)
    if t == "gstin":
        return gen_gstin(rng)
    if t == "ifsc":
        return gen_ifsc(rng)
    if t == "vehicle_registration":
        return gen_vehicle(rng)
    if t == "ip_address":
        return gen_ip(rng)
    raise KeyError(t)


# --------------------------------------------------------------------------------------
# Reference scanner (oracle) used only to check the labels
# --------------------------------------------------------------------------------------

def normalize(text):
    """NFKC per character, format characters dropped, any decimal digit -> ASCII.
    Returns the normalized string and, per normalized char, its index in `text`."""
    out, idx = [], []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cf":
            continue
        d = unicodedata.decimal(ch, None)
        if d is not None:
            out.append(chr(48 + d))
            idx.append(i)
            continue
        for c in unicodedata.normalize("NFKC", ch):
            if unicodedata.category(c) == "Cf":
                continue
            d = unicodedata.decimal(c, None)
            out.append(chr(48 + d) if d is not None else c)
            idx.append(i)
    return "".join(out), idx


def alnum(ch):
    return ch.isalnum()


SEP = re.compile(r"[ \t]{1,3}|[ \t]{0,3}(?:\r\n|\n|\r)[ \t]{0,3}|[-\u2013\u2014._/]")
CTX = {
    "account": re.compile(r"account|a/c|acct|(?<![a-z])acc(?![a-z])|khaa?ta|खाता"),
    "health": re.compile(r"abha|health|आभा|स्वास्थ्य|ayushman|(?<![a-z])phr(?![a-z])"),
    "pan": re.compile(r"(?<![a-z])pan(?![a-z])|पैन|permanent account"),
    "upi": re.compile(r"upi|vpa|gpay|g pay|phonepe|paytm|bhim|यूपीआई"),
}
CORE = ([10], [5, 5], [3, 3, 4])


def phone_shape(D, L, plus):
    if plus:
        if not D.startswith("91") or len(D) != 12 or D[2] not in "6789":
            return False
        return (L[1:] in CORE) if L[0] == 2 else ([L[0] - 2] + L[1:] in CORE)
    if len(D) == 10:
        return D[0] in "6789" and L in CORE
    if len(D) == 12 and D.startswith("91") and D[2] in "6789":
        return (L[1:] in CORE) if L[0] == 2 else ([L[0] - 2] + L[1:] in CORE)
    if len(D) == 11 and D[0] == "0" and D[1] in "6789":
        return (L[1:] in CORE) if L[0] == 1 else ([L[0] - 1] + L[1:] in CORE)
    return False


def card_grouping(L):
    if len(L) == 1 or L in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(x == 4 for x in L[:-1]) and 1 <= L[-1] <= 4


def digit_types(D, L, plus, ctx, liberal):
    n, out = len(D), []
    if n == 12 and D[0] in "23456789" and verhoeff_ok(D) and (liberal or L in ([12], [4, 4, 4])):
        out.append("aadhaar")
    if n == 16 and verhoeff_ok(D) and (liberal or L in ([16], [4, 4, 4, 4])):
        out.append("aadhaar_vid")
    if card_valid(D) and (liberal or card_grouping(L)):
        out.append("payment_card")
    if n == 14 and (L == [2, 4, 4, 4] or (ctx["health"] and (liberal or L == [14]))):
        out.append("abha")
    if liberal:
        if (n == 10 and D[0] in "6789") or (n == 11 and D[:1] == "0" and D[1] in "6789") or \
                (n == 12 and D[:2] == "91" and D[2] in "6789"):
            out.append("phone")
    elif phone_shape(D, L, plus):
        out.append("phone")
    if 9 <= n <= 18 and ctx["account"] and (liberal or len(L) == 1):
        out.append("bank_account")
    return out


def numeric_candidates(ns, ctx, liberal):
    runs = [(m.start(), m.end()) for m in re.finditer(r"[0-9]+", ns)]
    out = []
    for i in range(len(runs)):
        s0 = runs[i][0]
        if s0 > 0 and alnum(ns[s0 - 1]):
            continue
        plus = s0 > 0 and ns[s0 - 1] == "+"
        D, L = "", []
        for j in range(i, len(runs)):
            a, b = runs[j]
            if j > i and not SEP.fullmatch(ns[runs[j - 1][1]:a]):
                break
            D += ns[a:b]
            L.append(b - a)
            if len(D) > 22:
                break
            if b < len(ns) and alnum(ns[b]):
                continue
            for t in digit_types(D, L, False, ctx, liberal):
                out.append((t, s0, b))
            if plus and not liberal and phone_shape(D, L, True):
                out.append(("phone", s0 - 1, b))
    return out


NB, NA = r"(?<![^\W_])", r"(?![^\W_])"
RX = {
    "pan": re.compile(NB + r"[A-Za-z]{3}[ABCFGHJLPTabcfghjlpt][A-Za-z][0-9]{4}[A-Za-z]" + NA),
    "passport": re.compile(NB + r"[A-Za-z][1-9][0-9]{6}" + NA),
    "voter_id": re.compile(NB + r"([A-Za-z]{3})[0-9]{7}" + NA),
    "driving_licence": re.compile(NB + r"([A-Za-z]{2})[- ]?[0-9]{2}[- ]?(?:19|20)[0-9]{2}[- ]?[0-9]{7}" + NA),
    "vehicle_registration": re.compile(NB + r"([A-Za-z]{2})[- ]?[0-9]{1,2}[- ]?[A-Za-z]{1,3}[- ]?[0-9]{4}" + NA),
    "ifsc": re.compile(NB + r"[A-Za-z]{4}0[A-Za-z0-9]{6}" + NA),
    "gstin": re.compile(NB + r"([0-9]{2})[A-Za-z]{5}[0-9]{4}[A-Za-z][1-9A-Za-z][Zz][0-9A-Za-z]" + NA),
    "email": re.compile(NB + r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]*[A-Za-z0-9])?@"
                        r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                        r"\.[A-Za-z]{2,}" + NA),
    "upi_id": re.compile(NB + r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?@([A-Za-z]+)" + NA + r"(?!\.[A-Za-z0-9])"),
    "ipv4": re.compile(NB + r"(?<!\.)([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})" + NA + r"(?!\.[0-9])"),
}
VERSION_BEFORE = re.compile(r"(?i)(?:^|[^0-9a-z])(?:v|ver|version|build)[\s:#.]*$")


def ipv6_candidates(ns):
    out = []
    for m in re.finditer(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*", ns):
        a, b = m.start(), m.end()
        run = ns[a:b]
        starts = [0] + [k + 1 for k, c in enumerate(run) if c == ":"]
        ends = [len(run)] + [k for k, c in enumerate(run) if c in ":."]
        best = []
        for s in starts:
            for e in ends:
                if e - s < 2:
                    continue
                sub = run[s:e]
                if sub.count(":") < 2:
                    continue
                try:
                    ipaddress.IPv6Address(sub)
                except ValueError:
                    continue
                gs, ge = a + s, a + e
                if gs > 0 and (alnum(ns[gs - 1]) or (ns[gs - 1] == ":" and sub[0] == ":")):
                    continue
                if ge < len(ns) and (alnum(ns[ge]) or (ns[ge] == ":" and sub[-1] == ":")):
                    continue
                best.append((ge - gs, gs, ge))
        best.sort(key=lambda x: (-x[0], x[1]))
        taken = []
        for _, gs, ge in best:
            if all(ge <= x or gs >= y for x, y in taken):
                taken.append((gs, ge))
                out.append(("ip_address", gs, ge))
    return out


def oracle(ns, ctx):
    out = numeric_candidates(ns, ctx, liberal=False)
    for m in RX["pan"].finditer(ns):
        v = m.group()
        if v.isupper() or ctx["pan"]:
            out.append(("pan", m.start(), m.end()))
    for m in RX["passport"].finditer(ns):
        out.append(("passport", m.start(), m.end()))
    for m in RX["voter_id"].finditer(ns):
        if m.group(1).upper() not in VOTER_DENY:
            out.append(("voter_id", m.start(), m.end()))
    for t in ("driving_licence", "vehicle_registration"):
        for m in RX[t].finditer(ns):
            if m.group(1).upper() in STATE_CODES:
                out.append((t, m.start(), m.end()))
    for m in RX["ifsc"].finditer(ns):
        out.append(("ifsc", m.start(), m.end()))
    for m in RX["gstin"].finditer(ns):
        v = m.group().upper()
        if 1 <= int(v[:2]) <= 38 and gstin_check(v[:14]) == v[14]:
            out.append(("gstin", m.start(), m.end()))
    for m in RX["email"].finditer(ns):
        out.append(("email", m.start(), m.end()))
    for m in RX["upi_id"].finditer(ns):
        if m.group(1).lower() in UPI_KNOWN or ctx["upi"]:
            out.append(("upi_id", m.start(), m.end()))
    for m in RX["ipv4"].finditer(ns):
        octs = [m.group(k) for k in range(1, 5)]
        if all(int(o) <= 255 and (o == "0" or o[0] != "0") for o in octs):
            if not VERSION_BEFORE.search(ns[:m.start()]):
                out.append(("ip_address", m.start(), m.end()))
    out += ipv6_candidates(ns)
    return out


def contexts(ns):
    low = ns.lower()
    return {k: bool(r.search(low)) for k, r in CTX.items()}


def audit(text, gold, negs):
    """gold: [(type, s, e)] char spans; negs: [(types, s, e)] deliberate negatives."""
    ns, idx = normalize(text)
    ctx = contexts(ns)

    def orig(a, b):
        return (idx[a], idx[b - 1] + 1)

    strict = {(t,) + orig(a, b) for t, a, b in oracle(ns, ctx)}
    liberal = {(t,) + orig(a, b) for t, a, b in numeric_candidates(ns, ctx, liberal=True)}
    errs = []

    def ov(a, b):
        return a[1] < b[2] and b[1] < a[2]

    def suppressed(c, loose=False):
        return any(c[0] in ts and ov(c, (None, s, e)) and (loose or not lo) for ts, s, e, lo in negs)

    for g in gold:
        if g not in strict:
            errs.append("gold %s %r not found by the reference scanner" % (g[0], text[g[1]:g[2]]))
    for c in sorted(strict):
        if c in gold:
            continue
        over = [g for g in gold if ov(c, g)]
        longer = [g for g in over if c[2] - c[1] > g[2] - g[1]]
        if over and not longer:
            continue
        if suppressed(c):
            continue
        errs.append("unlabelled %s %r" % (c[0], text[c[1]:c[2]]))
    for c in sorted(liberal):
        if any(ov(c, g) for g in gold) or suppressed(c, loose=True):
            continue
        errs.append("loose digits %s %r" % (c[0], text[c[1]:c[2]]))
    return errs


# --------------------------------------------------------------------------------------
# Line building
# --------------------------------------------------------------------------------------

class E:
    """A gold entity piece."""
    __slots__ = ("type", "value")

    def __init__(self, t, value):
        assert t in TIER_OF, t
        self.type, self.value = t, value


class N:
    """A deliberately unlabelled piece: the reference scanner may see `types` here."""
    __slots__ = ("types", "value")

    def __init__(self, value, *types):
        self.types, self.value = set(types), value


class NL(N):
    """A piece whose digits may join into a number of the right length and checksum only in a
    grouping no type uses (an ISBN's hyphenated groups): the loose scan may see `types` here;
    the spec-grouping scan must not."""
    __slots__ = ()


class Reject(Exception):
    pass


def flatten(pieces):
    for p in pieces:
        if isinstance(p, (list, tuple)):
            yield from flatten(p)
        elif p is not None:
            yield p


def assemble(pieces):
    parts, gold, negs, pos = [], [], [], 0
    for p in flatten(pieces):
        if isinstance(p, str):
            s = p
        elif isinstance(p, E):
            s = p.value
            gold.append((p.type, pos, pos + len(s)))
        elif isinstance(p, N):
            s = p.value
            negs.append((p.types, pos, pos + len(s), isinstance(p, NL)))
        else:
            raise TypeError(p)
        parts.append(s)
        pos += len(s)
    return "".join(parts), gold, negs


FILL_KEYS = {
    "name": lambda r: r.choice(FIRST),
    "name2": lambda r: r.choice(FIRST),
    "full": fullname,
    "city": lambda r: r.choice(CITIES),
    "city2": lambda r: r.choice(CITIES),
    "bank": lambda r: r.choice(BANKS),
    "day": lambda r: r.choice(WEEKDAYS),
    "month": lambda r: r.choice(MONTHS),
    "co": lambda r: r.choice(COMPANIES),
    "amt": lambda r: r.choice(["₹%s" % f"{r.randint(2, 999) * 50:,}", "Rs %d" % (r.randint(1, 90) * 100),
                               "₹%d,%03d" % (r.randint(1, 99), r.randint(0, 999)), "INR %d" % (r.randint(2, 60) * 500)]),
    "hour": lambda r: "%d:%02d" % (r.randint(9, 18), r.choice([0, 15, 30, 45, 10, 40])),
    "date": lambda r: "%02d/%02d/20%02d" % (r.randint(1, 28), r.randint(1, 12), r.randint(19, 26)),
    "n": lambda r: str(r.randint(2, 9)),
}


def fill(rng, frame, **slots):
    """Split a frame on {key}; slots give piece lists, other keys are random filler."""
    out, last = [], 0
    for m in re.finditer(r"\{(\w+)\}", frame):
        out.append(frame[last:m.start()])
        k = m.group(1)
        if k in slots:
            out.append(slots[k])
        else:
            out.append(FILL_KEYS[k](rng))
        last = m.end()
    out.append(frame[last:])
    return out


class Corpus:
    def __init__(self):
        self.rng = random.Random(SEED)
        self.lines = []

    def add(self, category, maker, tries=80):
        rng = self.rng
        last = None
        for _ in range(tries):
            try:
                pieces = maker(rng)
            except Reject as e:
                last = ["rejected: %s" % e]
                continue
            text, gold, negs = assemble(pieces)
            errs = audit(text, gold, negs)
            if not errs:
                self._emit(category, text, gold)
                return
            last = errs + [repr(text)]
        raise SystemExit("cannot generate a clean line for %s:\n  %s" % (category, "\n  ".join(last)))

    def _emit(self, category, text, gold):
        ents = []
        prev = 0
        for t, s, e in sorted(gold, key=lambda g: g[1]):
            assert s >= prev, ("overlap", text, gold)
            prev = e
            bs, be = len(text[:s].encode()), len(text[:e].encode())
            value = text[s:e]
            assert text.encode()[bs:be].decode() == value
            assert value == value.strip() and unicodedata.category(value[0]) != "Cf" \
                and unicodedata.category(value[-1]) != "Cf", (category, value)
            ents.append({"type": t, "start": bs, "end": be, "value": value})
        tier = max((TIER_OF[e["type"]] for e in ents), key=TIERS.index, default="public")
        self.lines.append({"id": "rb-%04d" % (len(self.lines) + 1), "category": category,
                           "text": text, "entities": ents, "tier": tier})


# --------------------------------------------------------------------------------------
# Labels and sentence frames
# --------------------------------------------------------------------------------------

LABELS = {
    "aadhaar": ["Aadhaar", "Aadhaar no.", "Aadhaar number", "UID", "Aadhar", "AADHAAR", "Aadhaar card",
                "UIDAI no.", "aadhaar", "Aadhaar No"],
    "aadhaar_vid": ["VID", "Virtual ID", "Aadhaar VID", "virtual id", "VID no.", "Aadhaar Virtual ID"],
    "bank_account": ["a/c", "account", "acct", "A/C No", "account no.", "savings account", "current a/c",
                     "Acct No", "bank account", "A/c no.", "account number"],
    "upi_id": ["UPI", "UPI id", "VPA", "UPI ID", "upi", "GPay", "PhonePe", "BHIM UPI"],
    "abha": ["ABHA", "ABHA number", "ABHA ID", "Health ID", "health id", "ABHA no.", "ABHA Number"],
    "pan": ["PAN", "PAN no.", "PAN card", "PAN number", "pan", "PAN No"],
    "passport": ["passport", "Passport No.", "passport number", "Passport", "passport no"],
    "voter_id": ["Voter ID", "EPIC", "EPIC no.", "voter card", "Voter ID no.", "EPIC number"],
    "driving_licence": ["DL", "DL no.", "driving licence", "driving license", "licence no.", "DL number",
                        "Driving Licence"],
    "phone": ["mobile", "phone", "mob", "cell", "WhatsApp", "contact", "Mobile No", "mobile number",
              "phone number", "call me on", "reach me at"],
    "email": ["email", "e-mail", "mail", "Email ID", "write to", "email address", "E-mail"],
    "gstin": ["GSTIN", "GST no.", "GST number", "GSTIN/UIN", "GST registration"],
    "ifsc": ["IFSC", "IFSC code", "IFSC Code", "ifsc", "branch IFSC"],
    "vehicle_registration": ["vehicle", "car", "bike", "reg no.", "registration", "truck", "Vehicle No",
                             "number plate", "scooter"],
    "ip_address": ["IP", "host", "server", "client IP", "from", "source", "address", "IP address"],
}
GLUE = {
    "aadhaar": ["Aadhaar", "aadhaar", "UID", "Aadhar", "AADHAAR", "uid"],
    "aadhaar_vid": ["VID", "vid", "VirtualID", "aadhaar_vid"],
    "payment_card": ["card", "Card", "cardNo", "card_number", "CardNum"],
    "bank_account": ["acct", "Acct", "A/C", "a/c", "account", "AccountNo", "acct_no"],
    "upi_id": ["upi", "UPI", "vpa", "VPA", "upiId"],
    "abha": ["ABHA", "abha", "HealthID", "abha_no", "healthId"],
    "pan": ["PAN", "pan", "PanNo", "pan_no"],
    "passport": ["Passport", "passport", "PassportNo", "pp"],
    "voter_id": ["EPIC", "epic", "VoterID", "voter_id"],
    "driving_licence": ["DL", "dl", "DLNo", "licence"],
    "phone": ["mobile", "Mobile", "ph", "mob", "phone", "cell", "whatsapp"],
    "email": ["email", "Email", "mail", "e-mail"],
    "gstin": ["GSTIN", "gstin", "GST", "gst_no"],
    "ifsc": ["IFSC", "ifsc", "IFSCCode", "ifsc_code"],
    "vehicle_registration": ["vehicle", "VehicleNo", "reg", "RegNo", "car"],
    "ip_address": ["ip", "IP", "host", "client_ip"],
}

WRAP_FRAMES = [
    "{name} shared {x} on the call, please note it down.",
    "Can you check whether {x} matches our records?",
    "Update the customer file with {x} before {hour}.",
    "For the {city} branch: {x} was submitted on {day}.",
    "Pasting what the client sent me → {x} ← is this valid?",
    "Summarise: {full} from {city} gave {x} and asked for a callback.",
    "Draft a short reply confirming that {x} has been received.",
    "The scanned form lists {x} in the applicant section.",
    "Please verify {x} before we close this request for {name}.",
    "As discussed with {name}, here it is: {x}",
    "Note from {name} — {x} (keep this safe)",
    "Rewrite this more formally: hey, {x} is what u asked for",
    "Translate to Hindi: My details are {x} and I live in {city}.",
    "Is {x} in the right format? {name} is not sure.",
    "{full} ({city}) — {x} — follow up on {day}.",
    "Copying from the spreadsheet: {x} — row for {name}",
    "Extract the identifier from this text: {x} was provided by {full}.",
    "Reminder for {day}: confirm {x} with {name} from {co}.",
    "{name} says {x} is correct, the old one was cancelled in {month}.",
    "Fill the form with {x} and submit it before {hour} today.",
    "Hi team, {x} belongs to {full}, please map it.",
    "What does {x} tell us about where the applicant is from?",
    "Format this nicely for the letter: {x}",
    "The customer from {city} typed {x} into the chat window.",
    "Kindly cross-check {x} against the KYC papers.",
    "Forwarded message: {x} — sent by {name} at {hour}",
    "Write a one-line summary that mentions {x}.",
    "In the complaint dated {date}, {full} quoted {x}.",
    "Agent note: customer gave {x}, verified identity, closed.",
    "Please store {x} in the vault and mask it in emails.",
    "{name}: here you go {x}",
    "New joiner {full} from {city} — {x}",
    "Compare {x} with what we have on file for {name}.",
    "Does the document show {x} or something else?",
    "Spotted {x} in the onboarding sheet for {co}.",
    "Double-check {x} — {name} may have swapped two characters.",
    "Put {x} in the right field of the form.",
    "Can you explain why the portal rejects {x} for {full}?",
    "My manager wants {x} in the weekly report, is that ok?",
    "Clean up this text and keep only {x}",
    "From {name}'s message: {x} (sent from {city})",
    "Generate a checklist; item one is {x}",
    "Why would {x} show up twice in the export from {co}?",
    "Mask everything except the first part of {x} in the output.",
]
TYPE_FRAMES = {
    "aadhaar": ["Link {x} with the new SIM under the eKYC rule.", "The eKYC failed for {x}, retry on {day}.",
                "Seeding of {x} with the LPG connection is pending."],
    "aadhaar_vid": ["Use {x} instead of the full number for eKYC.", "Regenerate {x} from the UIDAI portal if it expired."],
    "payment_card": ["The charge of {amt} on {x} was disputed.", "Block {x} immediately, it was lost in {city}.",
                     "Refund {amt} back to {x} within 7 days."],
    "bank_account": ["Transfer {amt} to {x} at {bank}.", "NEFT to {x} ({bank}, {city} branch) failed.",
                     "Salary for {month} goes to {x} in {bank}."],
    "upi_id": ["Send {amt} to {x} for the dinner.", "Collect request from {x} is pending.",
               "Split the bill and pay {x} by tonight."],
    "abha": ["Attach the lab report to {x} at {co}.", "Link the discharge summary with {x}.",
             "Share {x} with the pharmacy in {city}."],
    "pan": ["The income tax notice mentions {x}.", "TDS was deducted against {x} for {month}.",
            "Form 16 shows {x} for {full}."],
    "passport": ["Visa appointment booked for {x}.", "Renewal of {x} is due in {month}.",
                 "Police verification for {x} is done in {city}."],
    "voter_id": ["Polling booth details for {x} are attached.", "Name correction for {x} in the electoral roll.",
                 "Booth slip printed for {x}."],
    "driving_licence": ["Renew {x} at the {city} RTO.", "A challan was issued against {x}.",
                        "Address change on {x} is pending at the RTO."],
    "phone": ["Send the OTP to {x} please.", "Ping me on {x} after {hour}.", "WhatsApp the receipt to {x}."],
    "email": ["Send the PDF statement to {x}.", "CC {x} on the thread.", "Reset link should go to {x}."],
    "gstin": ["Raise the tax invoice with {x} for {co}.", "Input credit was claimed under {x}.",
              "E-way bill needs {x} of the consignor."],
    "ifsc": ["Branch code is {x} for the {city} branch.", "NEFT needs {x} and the beneficiary name.",
             "RTGS failed because {x} was mistyped."],
    "vehicle_registration": ["Parking pass issued to {x}.", "FASTag linked to {x}.",
                             "Insurance claim filed for {x} after the accident in {city}."],
    "ip_address": ["Block {x} in the firewall.", "Too many logins from {x} last night.",
                   "Whitelist {x} for the {city} office VPN."],
}
COMMA_FRAMES = [
    "{x}, that is what {name} sent.", "As per the scan, {x}, issued in {city}.",
    "{name} gave {x}, and then left for {city}.", "Details: {x}, {full}, {city}.",
    "Received {x}, will update by {day}.", "I think it is {x}, but please double-check.",
    "Okay so {x}, right?", "Primary {x}, nothing else on the form.",
]
SEMI_FRAMES = [
    "{x}; the rest of the form is blank.", "Primary: {x}; secondary: none.",
    "Logged {x}; waiting for approval from {name}.", "Noted {x}; please archive the scan.",
    "{full} — {x}; {city}; joined in {month}.", "Confirmed {x}; closing the request.",
]
STOP_FRAMES = [
    "The applicant provided {x}.", "Please note {x}. Thanks!", "{name} confirmed {x}.",
    "Final value is {x}. Let me know if anything else is needed.", "Recorded {x}.",
    "From the form: {x}. Nothing else was filled.", "She said it is {x}.",
]
NEG_FRAMES = [
    "The scanner returned {x} which looks garbled.", "Ignore the token {x} in the export.",
    "Field shows {x} — corrupted by the OCR?", "Debug string: {x}",
    "{name} pasted {x} but it has extra characters.", "Is {x} even a real identifier?",
    "The barcode decoded to {x}, discard it.", "Junk value {x} found in row {n} of the import.",
]

BOUNDARY_WRAPS = [
    ("markdown_bold", "**", "**"), ("markdown_italic_underscore", "_", "_"),
    ("markdown_italic_star", "*", "*"), ("markdown_strike", "~~", "~~"), ("inline_code", "`", "`"),
    ("table_pipes", "|", "|"), ("quote_double", '"', '"'), ("quote_single", "'", "'"),
    ("quote_curly_double", "\u201c", "\u201d"), ("quote_curly_single", "\u2018", "\u2019"),
    ("paren", "(", ")"), ("square_bracket", "[", "]"), ("curly_brace", "{", "}"),
    ("angle_bracket", "<", ">"),
]
BOUNDARY_GLUED = [("colon_label", ":"), ("equals_label", "="), ("hash_label", "#"), ("slash_label", "/")]
PATH_DIRS = ["uploads/kyc/", "docs/", "files/customer/", "/srv/data/scans/", "drive/scans/", "s3://kyc-bucket/"]
PATH_TAILS = ["/front.jpg", "/scan.pdf", "/", "/page.png", "/back.jpeg", "/index.html"]


def label_for(rng, t, v=None, network=None):
    if t == "payment_card":
        return rng.choice(CARD_LABELS[network or "visa"])
    return rng.choice(LABELS[t])


def card_value(rng, style=None, network=None, length=None):
    d, net = gen_card(rng, network, length)
    return fmt_card(rng, d, style), net


def any_value(rng, t, **kw):
    """(value, label) for type t; the label gives the context the type needs."""
    if t == "payment_card":
        v, net = card_value(rng, **kw)
        return v, label_for(rng, t, network=net)
    if t == "abha":
        return fmt_abha(rng, gen_abha(rng), kw.get("style")), label_for(rng, t)
    if t == "phone":
        return fmt_phone(rng, gen_phone(rng), kw.get("style")), label_for(rng, t)
    return value_of(rng, t), label_for(rng, t)


def frame_for(rng, t, frames=None):
    if frames is not None:
        return rng.choice(frames)
    if rng.random() < 0.25:
        return rng.choice(TYPE_FRAMES[t])
    return rng.choice(WRAP_FRAMES)


# --------------------------------------------------------------------------------------
# 1. boundary
# --------------------------------------------------------------------------------------

GLUE_LETTERS = "GHJKQWXZghjkqwxz"
NEG_PHONE_STYLES = ["bare", "sp", "hy"]


def cat_boundary(C):
    for t in TYPES:
        for cls, L, R in BOUNDARY_WRAPS:
            for _ in range(2):
                def mk(rng, t=t, L=L, R=R):
                    v, lab = any_value(rng, t)
                    return fill(rng, frame_for(rng, t), x=[lab, " ", L, E(t, v), R])
                C.add(f"boundary/{cls}/{t}", mk)
        for cls, sym in BOUNDARY_GLUED:
            for _ in range(2):
                def mk(rng, t=t, sym=sym):
                    v, _lab = any_value(rng, t)
                    return fill(rng, frame_for(rng, t), x=[rng.choice(GLUE[t]), sym, E(t, v)])
                C.add(f"boundary/{cls}/{t}", mk)
        for _ in range(2):
            def mk(rng, t=t):
                v, lab = any_value(rng, t)
                d, tail = rng.choice(PATH_DIRS), rng.choice(PATH_TAILS)
                if t in ("bank_account", "abha") or rng.random() < 0.4:
                    d = d + rng.choice(GLUE[t]) + "/"
                return fill(rng, rng.choice(["The upload path is {x} on the shared drive.",
                                             "Open {x} and read the value aloud.",
                                             "File saved as {x} by {name}."]),
                            x=[d, E(t, v), tail])
            C.add(f"boundary/slash_path/{t}", mk)
        for side in ("before", "after"):
            for _ in range(2):
                def mk(rng, t=t, side=side):
                    v, lab = any_value(rng, t)
                    em = rng.choice(EMOJI)
                    slot = [lab, " ", em, E(t, v)] if side == "before" else [lab, " ", E(t, v), em]
                    return fill(rng, frame_for(rng, t), x=slot)
                C.add(f"boundary/emoji_{side}/{t}", mk)
        for cls, frames in (("comma_after", COMMA_FRAMES), ("semicolon_after", SEMI_FRAMES),
                            ("fullstop_after", STOP_FRAMES)):
            for _ in range(2):
                def mk(rng, t=t, frames=frames):
                    v, lab = any_value(rng, t)
                    return fill(rng, rng.choice(frames), x=[lab, " ", E(t, v)])
                C.add(f"boundary/{cls}/{t}", mk)
        # negatives: the same kind of value glued to a letter or digit
        for glue in ("letter_left", "letter_right", "digit_left", "digit_right"):
            if t == "email" or (t == "upi_id" and glue.endswith("left")):
                continue
            for _ in range(2):
                def mk(rng, t=t, glue=glue):
                    kw = {}
                    if t == "phone":
                        kw["style"] = rng.choice(NEG_PHONE_STYLES)
                    if t == "abha" and glue.startswith("letter"):
                        kw["style"] = rng.choice(["hy", "bare"])
                    if t == "bank_account":
                        v, lab = gen_bank(rng, 18 if glue.startswith("digit") else None), label_for(rng, t)
                    else:
                        v, lab = any_value(rng, t, **kw)
                    ch = rng.choice(GLUE_LETTERS) if glue.startswith("letter") else rng.choice(DIG)
                    g = ch + v if glue.endswith("left") else v + ch
                    if t == "upi_id":
                        slot = [rng.choice(["send to ", "", "ask ", "handle "]), g]
                    elif t in ("bank_account", "abha") or rng.random() < 0.5:
                        slot = [lab, " ", g]
                    else:
                        slot = [g]
                    return fill(rng, rng.choice(NEG_FRAMES), x=slot)
                C.add(f"boundary/glued_{glue}/{t}", mk)


# --------------------------------------------------------------------------------------
# 2. separator
# --------------------------------------------------------------------------------------

WS = [" ", "\t", "\u00a0", "\u2009", "\u202f"]
WS_NAMED = {"tab": "\t", "nbsp": "\u00a0", "thin_space": "\u2009", "narrow_nbsp": "\u202f"}
LINEBREAKS = {"lf": "\n", "spaced_lf": " \n ", "crlf": "\r\n", "lf_space_after": "\n ", "space_lf": " \n"}
PUNCT = {"hyphen": "-", "en_dash": "\u2013", "em_dash": "\u2014", "dot": ".", "underscore": "_", "slash": "/"}
GROUPINGS = {"aadhaar": [4, 4, 4], "aadhaar_vid": [4, 4, 4, 4], "payment_card": [4, 4, 4, 4],
             "abha": [2, 4, 4, 4], "phone": [5, 5]}


def sep_digits(rng, t):
    if t == "aadhaar":
        return gen_aadhaar(rng), label_for(rng, t)
    if t == "aadhaar_vid":
        return gen_vid(rng), label_for(rng, t)
    if t == "payment_card":
        d, net = gen_card(rng, rng.choice(["visa", "mastercard", "rupay", "jcb", "discover"]), 16)
        return d, label_for(rng, t, network=net)
    if t == "abha":
        return gen_abha(rng), label_for(rng, t)
    return gen_phone(rng), label_for(rng, t)


SEP_FRAMES = [
    "{lab} {x} — please confirm.", "Copied from the PDF: {lab} {x}", "{name} wrote: my {lab} is {x}",
    "{lab}: {x} (from the scanned letter)", "Check {lab} {x} for {full}.", "{lab} {x}\nThanks, {name}",
    "Text from the form -> {lab} {x} <- verify", "Hi, {lab} is {x}. Regards, {name}",
]


def sep_value(rng, t, d, seps):
    v = group(d, GROUPINGS[t], seps)
    if t == "phone" and rng.random() < 0.3:
        v = rng.choice(["+91 ", "+91-", "0"]) + v
    return v


def cat_separator(C):
    for t in GROUPINGS:
        k = len(GROUPINGS[t]) - 1
        cases = []
        cases.append(("multi_space", lambda rng: [" " * rng.randint(2, 3) for _ in range(k)]))
        for name, ch in WS_NAMED.items():
            cases.append((name, lambda rng, ch=ch: [ch * rng.randint(1, 3) if rng.random() < 0.4 else ch
                                                     for _ in range(k)]))
        cases.append(("mixed_whitespace", lambda rng: ["".join(rng.choice(WS) for _ in range(rng.randint(1, 3)))
                                                       for _ in range(k)]))
        for name, lb in LINEBREAKS.items():
            def f(rng, lb=lb):
                s = [" "] * k
                s[rng.randrange(k)] = lb
                return s
            cases.append((name, f))
        for name, p in PUNCT.items():
            cases.append((name, lambda rng, p=p: [p] * k))
        cases.append(("mixed_punct", lambda rng: [rng.choice(list(PUNCT.values()) + [" "]) for _ in range(k)]))
        cases.append(("mixed_any", lambda rng: [rng.choice([rng.choice(WS), rng.choice(list(PUNCT.values())),
                                                            " ", "  "]) for _ in range(k)]))
        for name, f in cases:
            for _ in range(3 if name.startswith("mixed") else 2):
                def mk(rng, t=t, f=f):
                    d, lab = sep_digits(rng, t)
                    seps = f(rng)
                    if len(set(seps)) == 1 and seps[0] == " " and k > 1:
                        seps[0] = "\u00a0"
                    return fill(rng, rng.choice(SEP_FRAMES), lab=lab, x=[E(t, sep_value(rng, t, d, seps))])
                C.add(f"separator/{name}/{t}", mk)
        # near misses
        for name in ("four_spaces", "two_line_breaks", "checksum_fail"):
            if name == "checksum_fail" and t == "abha":
                continue
            sub = "first_digit_1_to_5" if (name == "checksum_fail" and t == "phone") else name
            for _ in range(4):
                def mk(rng, t=t, name=name):
                    d, lab = sep_digits(rng, t)
                    seps = [rng.choice([" ", "-", " "]) for _ in range(k)]
                    if name == "four_spaces":
                        seps[rng.randrange(k)] = rng.choice(["    ", "     ", " \u00a0 \u00a0", "\t\t\t\t"])
                    elif name == "two_line_breaks":
                        seps[rng.randrange(k)] = rng.choice(["\n\n", "\n \n", "\r\n\r\n", " \n\n "])
                    elif t == "phone":
                        d = rng.choice("12345") + d[1:]
                    else:
                        bad = d[:-1] + str((int(d[-1]) + rng.randint(1, 9)) % 10)
                        if verhoeff_ok(bad) or card_valid(bad):
                            raise Reject("still valid")
                        d = bad
                    v = group(d, GROUPINGS[t], seps)
                    return fill(rng, rng.choice(SEP_FRAMES), lab=lab, x=[v])
                C.add(f"separator/near_miss_{sub}/{t}", mk)


# --------------------------------------------------------------------------------------
# 3. invisible
# --------------------------------------------------------------------------------------

INVIS = {"zwsp": "\u200b", "zwj": "\u200d", "zwnj": "\u200c", "word_joiner": "\u2060",
         "soft_hyphen": "\u00ad", "bom": "\ufeff"}


def insert_inside(rng, v, chars, count):
    pos = sorted(rng.sample(range(1, len(v)), min(count, len(v) - 1)), reverse=True)
    for p in pos:
        v = v[:p] + rng.choice(chars) + v[p:]
    return v


def cat_invisible(C):
    for t in TYPES:
        for name, ch in INVIS.items():
            def mk(rng, t=t, ch=ch):
                v, lab = any_value(rng, t)
                return fill(rng, frame_for(rng, t), x=[lab, " ", E(t, insert_inside(rng, v, [ch], rng.randint(1, 3)))])
            C.add(f"invisible/inside_{name}/{t}", mk)

            def mk(rng, t=t, ch=ch):
                v, lab = any_value(rng, t)
                where = rng.choice(["before", "after", "both"])
                pre = ch if where in ("before", "both") else ""
                post = ch * rng.randint(1, 2) if where in ("after", "both") else ""
                sp = rng.choice([" ", ": ", " - "])
                return fill(rng, frame_for(rng, t), x=[lab, sp, pre, E(t, v), post])
            C.add(f"invisible/around_{name}/{t}", mk)
        for _ in range(2):
            def mk(rng, t=t):
                v, lab = any_value(rng, t)
                chars = list(INVIS.values())
                inner = insert_inside(rng, v, chars, rng.randint(2, 4))
                return fill(rng, frame_for(rng, t), x=[lab, " ", rng.choice(chars), E(t, inner), rng.choice(chars)])
            C.add(f"invisible/mixed/{t}", mk)
        if t not in ("email", "upi_id"):
            def mk(rng, t=t):
                kw = {"style": "bare"} if t in ("phone", "abha") else {}
                v, _ = any_value(rng, t, **kw)
                g = rng.choice(GLUE[t]) if rng.random() < 0.7 else rng.choice(["X", "ref", "id"])
                return fill(rng, rng.choice(NEG_FRAMES + ["Token {x} from the export."]),
                            x=[g + rng.choice(list(INVIS.values())) + v])
            C.add(f"invisible/glued_through_invisible/{t}", mk)


# --------------------------------------------------------------------------------------
# 4. lookalike
# --------------------------------------------------------------------------------------

def _map_char(c, style):
    o = ord(c)
    if style == "fullwidth":
        if c.isascii() and (c.isalnum() or c in "@.-:+"):
            return chr(o - 0x20 + 0xFF00) if c not in " " else c
        return c
    if c.isdigit() and c.isascii():
        d = o - 48
        return chr({"bold": 0x1D7CE, "monospace": 0x1D7F6, "double_struck": 0x1D7D8,
                    "sans_bold": 0x1D7EC}[style] + d) if style != "circled" else ("\u24ea" if d == 0 else chr(0x2460 + d - 1))
    if c.isascii() and c.isupper():
        base = {"bold": 0x1D400, "monospace": 0x1D670, "circled": 0x24B6, "double_struck": None,
                "sans_bold": 0x1D5D4}[style]
        return chr(base + o - 65) if base else c
    if c.isascii() and c.islower():
        base = {"bold": 0x1D41A, "monospace": 0x1D68A, "circled": 0x24D0, "double_struck": None,
                "sans_bold": 0x1D5EE}[style]
        return chr(base + o - 97) if base else c
    return c


def lookalike(rng, v, style, partial=False):
    out = []
    for c in v:
        m = _map_char(c, style)
        out.append(m if (not partial or rng.random() < 0.5) else c)
    s = "".join(out)
    assert normalize(s)[0] == normalize(v)[0], (v, s, normalize(s)[0])
    return s


def cat_lookalike(C):
    digit_types = ["aadhaar", "aadhaar_vid", "payment_card", "bank_account", "abha", "phone"]
    mixed_types = ["pan", "passport", "voter_id", "driving_licence", "vehicle_registration", "ifsc", "gstin"]
    plan = [(t, s) for t in digit_types for s in ("fullwidth", "bold", "monospace", "circled", "partial_fullwidth",
                                                  "double_struck")]
    plan += [(t, s) for t in mixed_types for s in ("fullwidth", "bold", "monospace", "partial_fullwidth", "sans_bold")]
    plan += [(t, s) for t in ("email", "upi_id") for s in ("fullwidth", "partial_fullwidth")]
    plan += [("ip_address", s) for s in ("fullwidth", "bold", "monospace", "partial_fullwidth")]
    for t, style in plan:
        for _ in range(2):
            def mk(rng, t=t, style=style):
                if t == "ip_address":
                    v, lab = (gen_ipv4(rng) if style != "fullwidth" or rng.random() < 0.6 else gen_ipv6(rng)), label_for(rng, t)
                else:
                    v, lab = any_value(rng, t)
                partial = style.startswith("partial")
                s = lookalike(rng, v, style.replace("partial_", ""), partial)
                if s == v:
                    raise Reject("unchanged")
                return fill(rng, frame_for(rng, t), x=[lab, " ", E(t, s)])
            C.add(f"lookalike/{style}/{t}", mk)


# --------------------------------------------------------------------------------------
# 5. structure: the same values inside pasted markdown, CSV, JSON, HTML, logs, ...
# --------------------------------------------------------------------------------------

FORM = {
    "aadhaar": (["Aadhaar No", "Aadhaar Number", "UID", "Aadhaar"], ["aadhaar", "aadhaar_no", "uid", "aadhaarNumber"]),
    "aadhaar_vid": (["VID", "Virtual ID"], ["vid", "virtual_id", "aadhaarVid"]),
    "payment_card": (["Card No", "Card Number", "Debit Card"], ["card_number", "cardNo", "card"]),
    "bank_account": (["Account No", "A/C No", "Account Number", "Bank A/c"],
                     ["account_no", "acctNumber", "accountNumber", "bank_account", "acct"]),
    "upi_id": (["UPI ID", "VPA", "UPI"], ["upi", "vpa", "upi_id", "upiHandle"]),
    "abha": (["ABHA Number", "ABHA ID", "Health ID"], ["abha", "abha_number", "healthId", "abha_id"]),
    "pan": (["PAN", "PAN No", "PAN Number"], ["pan", "pan_no", "panNumber"]),
    "passport": (["Passport No", "Passport Number"], ["passport", "passport_no", "passportNumber"]),
    "voter_id": (["Voter ID", "EPIC No"], ["voter_id", "epic", "epicNo"]),
    "driving_licence": (["DL No", "Driving Licence"], ["dl_no", "drivingLicence", "dl"]),
    "phone": (["Mobile", "Mobile No", "Phone", "Contact number"], ["mobile", "phone", "mobileNo", "contact"]),
    "email": (["Email", "E-mail", "Email ID"], ["email", "mail", "emailId"]),
    "gstin": (["GSTIN", "GST No"], ["gstin", "gst_no", "gstNumber"]),
    "ifsc": (["IFSC", "IFSC Code"], ["ifsc", "ifsc_code", "ifscCode"]),
    "vehicle_registration": (["Vehicle No", "Reg. No", "Registration No"], ["vehicle_no", "regNo", "vehicle"]),
    "ip_address": (["Last login IP", "IP Address", "Client IP"], ["ip", "client_ip", "remote_addr", "src_ip"]),
}
NOSPACE_STYLES = {"aadhaar": "bare", "aadhaar_vid": "bare", "payment_card": "bare", "abha": "bare", "phone": "bare"}


def record(rng, k=None, nospace=False):
    """A few (type, value) fields; never bank_account together with an ABHA (a bare 14-digit
    account near a health word would be ambiguous)."""
    k = k or rng.randint(2, 5)
    types = rng.sample(TYPES, k)
    if "bank_account" in types and "abha" in types:
        types.remove("abha")
    out = []
    for t in types:
        if nospace and t in NOSPACE_STYLES:
            if t == "payment_card":
                v = card_value(rng, "bare")[0]
            elif t == "phone":
                v = fmt_phone(rng, gen_phone(rng), rng.choice(["bare", "p91", "z"]))
            elif t == "abha":
                v = fmt_abha(rng, gen_abha(rng), rng.choice(["bare", "hy"]))
            else:
                v = any_value(rng, t, style=NOSPACE_STYLES[t])[0]
        elif nospace and t in ("vehicle_registration", "driving_licence"):
            v = gen_vehicle(rng, "none") if t == "vehicle_registration" else gen_dl(rng, rng.choice(["none", "hyphen"]))
        else:
            v = any_value(rng, t)[0]
        out.append((t, v))
    return out


def flabel(rng, t):
    return rng.choice(FORM[t][0])


def fkey(rng, t):
    return rng.choice(FORM[t][1])


def dob(rng):
    return "%02d/%02d/%d" % (rng.randint(1, 28), rng.randint(1, 12), rng.randint(1950, 2005))


def s_markdown(rng):
    fields = record(rng)
    style = rng.randint(0, 3)
    title = rng.choice(["## Customer profile", "### KYC details", "**Applicant**", "# Onboarding notes",
                        "#### Beneficiary"])
    out = [title, "\n\n"]
    if style == 3:
        out += ["| Field | Value |\n|---|---|\n", "| Name | ", fullname(rng), " |\n"]
        for t, v in fields:
            out += ["| ", flabel(rng, t), " | ", E(t, v), " |\n"]
        out.append("\nPlease review the table above.")
        return out
    out += ["- **Name:** ", fullname(rng), "\n"]
    for t, v in fields:
        lab = flabel(rng, t)
        if style == 0:
            out += ["- **", lab, ":** ", E(t, v), "\n"]
        elif style == 1:
            out += ["* ", lab, ": `", E(t, v), "`\n"]
        else:
            out += ["1. ", lab, " \u2014 ", E(t, v), "\n"]
    out.append(rng.choice(["", "\n> Verified by " + rng.choice(FIRST), "\n_Last updated " + rng.choice(MONTHS) + "_"]))
    return out


def s_csv(rng):
    fields = record(rng, nospace=rng.random() < 0.5)
    q = rng.random() < 0.4
    head = ["name"] + [fkey(rng, t) for t, _ in fields]
    out = [",".join(('"%s"' % h) if q else h for h in head), "\n"]
    cells = [[fullname(rng)]] + [[E(t, v)] for t, v in fields]
    for i, c in enumerate(cells):
        if i:
            out.append(",")
        out += (['"', c, '"'] if q else [c])
    if rng.random() < 0.5:
        out.append("\n")
    return [rng.choice(["Parse this CSV:\n", "", "Here is the export row:\n", "csv:\n"]), out]


def s_json(rng):
    fields = record(rng)
    pretty = rng.random() < 0.5
    items = [('"name"', ['"', fullname(rng), '"'])]
    for t, v in fields:
        key = fkey(rng, t)
        if t == "bank_account" and rng.random() < 0.3:
            items.append(('"%s"' % key, [E(t, v)]))
        else:
            items.append(('"%s"' % key, ['"', E(t, v), '"']))
    wrap = rng.choice(["customer", "data", "payload", None])
    out = []
    if pretty:
        ind = "    " if wrap else "  "
        out.append("{\n" + ("  \"%s\": {\n" % wrap if wrap else ""))
        for i, (k, v) in enumerate(items):
            out += [ind, k, ": ", v, ",\n" if i < len(items) - 1 else "\n"]
        out.append(("  }\n" if wrap else "") + "}")
    else:
        out.append("{" + ('"%s": {' % wrap if wrap else ""))
        for i, (k, v) in enumerate(items):
            out += [k, ": ", v, ", " if i < len(items) - 1 else ""]
        out.append(("}" if wrap else "") + "}")
    return [rng.choice(["Validate this JSON: ", "The API returned:\n", "", "Fix the syntax in ", "payload = "]), out]


def s_html(rng):
    fields = record(rng)
    style = rng.randint(0, 3)
    if style == 0:
        out = ["<table>\n<tr><th>Field</th><th>Value</th></tr>\n"]
        for t, v in fields:
            out += ["<tr><td>", flabel(rng, t), "</td><td>", E(t, v), "</td></tr>\n"]
        out.append("</table>")
    elif style == 1:
        out = ["<div class=\"kyc\">"]
        for t, v in fields:
            out += ["<p><b>", flabel(rng, t), ":</b> ", E(t, v), "</p>"]
        out.append("</div>")
    elif style == 2:
        out = ["<ul>"]
        for t, v in fields:
            out += ["<li>", flabel(rng, t), ": <b>", E(t, v), "</b></li>"]
        out.append("</ul>")
    else:
        out = ["<form>"]
        for t, v in fields:
            out += ['<input name="', fkey(rng, t), '" value="', E(t, v), '">']
        out.append("</form>")
    return [rng.choice(["Convert this HTML to plain text: ", "", "Extract the fields from\n"]), out]


def ts(rng):
    return "2026-%02d-%02dT%02d:%02d:%02d%sZ" % (rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                                                 rng.randint(0, 59), rng.randint(0, 59),
                                                 rng.choice(["", ".%03d" % rng.randint(0, 999)]))


def hexs(rng, n):
    while True:
        s = "".join(rng.choice("0123456789abcdef") for _ in range(n))
        if re.search("[a-f]", s[:4]) and re.search("[a-f]", s[-4:]):
            return s


def s_log(rng):
    fields = record(rng, nospace=True)
    style = rng.randint(0, 2)
    if style == 0:
        out = [ts(rng), " ", rng.choice(["INFO", "WARN", "DEBUG", "ERROR"]), " ",
               rng.choice(["kyc-svc", "payments", "onboarding", "auth"]), " req=", hexs(rng, 8)]
        for t, v in fields:
            out += [" ", fkey(rng, t), "=", E(t, v)]
    elif style == 1:
        out = [rng.choice(["Mar", "Apr", "Nov"]), " %2d %02d:%02d:%02d " % (rng.randint(1, 28), rng.randint(0, 23),
                                                                        rng.randint(0, 59), rng.randint(0, 59)),
               "app-", rng.choice(["blr", "bom", "hyd"]), " worker[", str(rng.randint(100, 9999)), "]: "]
        for i, (t, v) in enumerate(fields):
            out += ["" if i == 0 else ", ", fkey(rng, t), ": ", E(t, v)]
    else:
        out = ['{"ts":"', ts(rng), '","level":"info","msg":"', rng.choice(["kyc submitted", "payout queued", "login"]), '"']
        for t, v in fields:
            out += [',"', fkey(rng, t), '":"', E(t, v), '"']
        out.append("}")
    return [rng.choice(["Why is this log line failing to parse?\n", "", "Explain this error:\n"]), out]


def s_nginx(rng):
    ip = gen_ip(rng) if rng.random() < 0.8 else gen_ipv4(rng)
    t, v = rng.choice([("pan", gen_pan(rng)), ("email", gen_email(rng)), ("phone", gen_phone(rng)),
                       ("upi_id", gen_upi(rng))])
    k = fkey(rng, t)
    return [E("ip_address", ip), ' - - [%02d/Mar/2026:%02d:%02d:%02d +0530] "GET /api/v1/kyc?%s=' % (
        rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), k), E(t, v),
        ' HTTP/1.1" %s %d "-" "Mozilla/5.0"' % (rng.choice(["200", "404", "500"]), rng.randint(100, 999))]


def s_email_thread(rng):
    fields = record(rng, rng.randint(2, 3))
    me, other = fullname(rng), fullname(rng)
    of, ol = other.lower().split()
    addr = rng.choice([of + "." + ol, of + ol[0], of[0] + ol, of + "_" + ol]) + "@" + rng.choice(DOMAINS)
    out = ["Subject: ", rng.choice(["KYC documents", "Re: pending details", "Fwd: account update", "Loan file"]),
           "\n\nHi ", other.split()[0], ",\n\n"]
    t, v = fields[0]
    out += [rng.choice(["As requested, my ", "Sharing the ", "Here is the "]), flabel(rng, t), ": ", E(t, v), "\n"]
    out += ["\nRegards,\n", me, "\n\nOn ", rng.choice(WEEKDAYS), ", %d %s 2026 at %d:%02d, " % (
        rng.randint(1, 28), rng.choice(MONTHS), rng.randint(9, 18), rng.randint(0, 59)),
        other, " <", E("email", addr), "> wrote:\n"]
    out += ["> Dear ", me.split()[0], ",\n> Could you confirm the details we have?\n"]
    for t, v in fields[1:]:
        out += ["> ", flabel(rng, t), ": ", E(t, v), "\n"]
    out.append(">\n> Thanks")
    return out


def s_kyc(rng):
    fields = record(rng, rng.randint(3, 5))
    name = fullname(rng).upper() if rng.random() < 0.5 else fullname(rng)
    out = [rng.choice(["KYC FORM\n", "Customer Information Sheet\n", "", "APPLICATION FOR NEW CONNECTION\n"]),
           "Name: ", name, "\n", "Father's Name: ", fullname(rng), "\n", "DOB: ", dob(rng), "\n"]
    for t, v in fields:
        sep = rng.choice([": ", " : ", ":\t", " - "])
        out += [flabel(rng, t), sep, E(t, v), "\n"]
    out += ["Address: ", str(rng.randint(1, 99)), ", ", rng.choice(["MG Road", "Station Road", "Gandhi Nagar",
                                                                    "Nehru Colony", "Anna Salai"]), ", ",
            rng.choice(CITIES), " ", str(rng.randint(110001, 855999))]
    return out


STATE_NAMES = ["MAHARASHTRA", "KARNATAKA", "TAMIL NADU", "GUJARAT", "UTTAR PRADESH", "WEST BENGAL", "TELANGANA"]


def s_ocr(rng):
    kind = rng.randint(0, 6)
    name = fullname(rng).upper()
    if kind == 0:
        a = fmt_aadhaar(rng, gen_aadhaar(rng), "sp")
        out = ["Government of India\n", name.title(), "\nDOB: ", dob(rng), "\n", rng.choice(["MALE", "FEMALE"]),
               " / ", rng.choice(["पुरुष", "महिला"]), "\n", E("aadhaar", a), "\n"]
        if rng.random() < 0.6:
            out += ["VID : ", E("aadhaar_vid", fmt_vid(rng, gen_vid(rng), "sp")), "\n"]
        out.append("मेरा आधार, मेरी पहचान")
        return out
    if kind == 1:
        return ["INCOME TAX DEPARTMENT   GOVT. OF INDIA\n", name, "\n", fullname(rng).upper(), "\n", dob(rng),
                "\nPermanent Account Number\n", E("pan", gen_pan(rng)), "\nSignature"]
    if kind == 2:
        return ["ELECTION COMMISSION OF INDIA\nIDENTITY CARD\n", E("voter_id", gen_voter(rng)),
                "\nElector's Name : ", name, "\nFather's Name : ", fullname(rng).upper(), "\nSex : ",
                rng.choice(["Male", "Female"]), "\nDate of Birth : ", dob(rng)]
    if kind == 3:
        return ["INDIAN UNION DRIVING LICENCE\n", rng.choice(STATE_NAMES), "\nDL No. ", E("driving_licence", gen_dl(rng)),
                "\nDOI : ", dob(rng), "\nName : ", name, "\nBlood Group : ", rng.choice(["B+", "O+", "A+", "AB-"])]
    if kind == 4:
        p = gen_passport(rng)
        sur, giv = name.split()[1], name.split()[0]
        mrz1 = ("P<IND" + sur + "<<" + giv).ljust(44, "<")
        mrz2 = p + "<" + str(rng.randint(0, 9)) + "IND" + "%02d%02d%02d" % (rng.randint(60, 99), rng.randint(1, 12),
                                                                           rng.randint(1, 28))
        mrz2_tail = str(rng.randint(0, 9)) + rng.choice("MF") + "%02d%02d%02d" % (rng.randint(27, 35), rng.randint(1, 12),
                                                                               rng.randint(1, 28)) + str(rng.randint(0, 9))
        mrz2_tail = mrz2_tail.ljust(44 - len(mrz2), "<")
        return ["REPUBLIC OF INDIA\nPassport No. ", E("passport", p), "\nSurname ", sur, "\nGiven Name ", giv, "\n",
                mrz1, "\n", E("passport", p), mrz2[len(p):], mrz2_tail]
    if kind == 5:
        return [rng.choice(["STATE BANK OF INDIA", "HDFC BANK LTD", "CANARA BANK", "BANK OF BARODA"]),
                "\nBranch: ", rng.choice(CITIES).upper(), "\nIFSC: ", E("ifsc", gen_ifsc(rng)), "\nA/c No. ",
                E("bank_account", gen_bank(rng)), "\nName: ", name, "\nPASSBOOK"]
    return ["Form GST REG-06\nRegistration Certificate\nRegistration Number : ", E("gstin", gen_gstin(rng)),
            "\nLegal Name : ", rng.choice(COMPANIES).upper(), "\nType of Registration : Regular"]


CHAT_LINES = {
    "aadhaar": ["mera aadhaar {x} hai", "Aadhaar: {x}", "aadhar no {x} check karo"],
    "aadhaar_vid": ["VID use karo {x}", "virtual id {x}"],
    "payment_card": ["card {x} se pay kiya", "my card {x} got blocked"],
    "bank_account": ["account no {x}", "a/c {x} mein bhej do", "acct {x}"],
    "upi_id": ["UPI {x} pe bhej do", "gpay: {x}", "pay to {x}"],
    "abha": ["ABHA number {x}", "health id {x}"],
    "pan": ["PAN {x} bhej raha hu", "pan card {x}"],
    "passport": ["passport no {x}", "passport {x} hai"],
    "voter_id": ["voter id {x}", "EPIC {x}"],
    "driving_licence": ["DL {x}", "licence {x} expire ho gaya"],
    "phone": ["call me on {x}", "mera number {x}", "whatsapp {x}"],
    "email": ["email {x} pe bhejo", "mail me at {x}"],
    "gstin": ["GSTIN {x} hai hamara", "gst no {x}"],
    "ifsc": ["IFSC {x}", "ifsc code {x}"],
    "vehicle_registration": ["gaadi {x} hai", "car no {x}"],
    "ip_address": ["server ip {x} down hai", "login from {x}"],
}


def s_whatsapp(rng):
    fields = record(rng, rng.randint(1, 3))
    people = rng.sample(FIRST, 2)
    d, mo, yy = rng.randint(1, 28), rng.randint(1, 12), rng.randint(24, 26)
    h, mi = rng.randint(8, 21), rng.randint(0, 50)
    android = rng.random() < 0.4
    out = []

    def stamp(k):
        if android:
            return "%02d/%02d/20%02d, %d:%02d %s - " % (d, mo, yy, (h % 12) or 12, mi + k, "pm" if h >= 12 else "am")
        return "[%02d/%02d/%02d, %02d:%02d] " % (d, mo, yy, h, mi + k)
    k = 0
    out += [stamp(k), people[1], ": ", rng.choice(["details bhejo", "send the details pls", "kya number hai?"]), "\n"]
    for t, v in fields:
        k += 1
        line = rng.choice(CHAT_LINES[t])
        out += [stamp(k), people[0], ": ", fill(rng, line, x=[E(t, v)]), "\n"]
    out += [stamp(k + 1), people[1], ": ", rng.choice(["ok 👍", "done", "thanks!", "noted 🙏"])]
    return out


def s_yaml(rng):
    fields = record(rng)
    out = [rng.choice(["customer:\n", "applicant:\n", "beneficiary:\n"]), "  name: ", fullname(rng), "\n"]
    for t, v in fields:
        q = rng.choice(["", "'", '"'])
        out += ["  ", fkey(rng, t), ": ", q, E(t, v), q, "\n"]
    return [rng.choice(["Is this YAML valid?\n", "", "config.yaml:\n"]), out]


def s_xml(rng):
    fields = record(rng)
    out = ["<customer>", "<name>", fullname(rng), "</name>"]
    for t, v in fields:
        k = fkey(rng, t)
        out += ["<", k, ">", E(t, v), "</", k, ">"]
    out.append("</customer>")
    return [rng.choice(["Parse: ", "", "SOAP body: "]), out]


def s_url(rng):
    fields = record(rng, rng.randint(1, 3), nospace=True)
    out = [rng.choice(["https://portal.example.in/kyc/submit?", "http://10.0.0.5/api/verify?",
                       "https://bank.example.co.in/form?"])]
    for i, (t, v) in enumerate(fields):
        out += ["&" if i else "", fkey(rng, t), "=", E(t, v)]
    if "10.0.0.5" in out[0]:
        out[0] = ["http://", E("ip_address", "10.0.0.5"), "/api/verify?"]
    return [rng.choice(["Why does this link 404? ", "", "Shorten this URL: "]), out]


def s_sql(rng):
    # column names are far from their values: no type that needs a context word here
    fields = [(t, v) for t, v in record(rng, rng.randint(2, 4)) if t != "bank_account"
              and not (t == "abha" and re.fullmatch(r"[0-9]{14}", v))]
    if not fields:
        raise Reject("no fields")
    cols = ", ".join(["name"] + [fkey(rng, t) for t, _ in fields])
    out = ["INSERT INTO customers (", cols, ") VALUES ('", fullname(rng).replace("'", ""), "'"]
    for t, v in fields:
        out += [", '", E(t, v), "'"]
    out.append(");")
    return [rng.choice(["Optimise this query:\n", "", "-- migration\n"]), out]


def s_python(rng):
    fields = record(rng)
    out = ["user = {"]
    for i, (t, v) in enumerate(fields):
        out += [", " if i else "", "'", fkey(rng, t), "': '", E(t, v), "'"]
    out.append("}\nprint(user)")
    return [rng.choice(["Refactor this:\n", "What does this print?\n", ""]), out]


STRUCTURE = [("markdown", s_markdown, 45), ("csv", s_csv, 35), ("json", s_json, 50), ("html", s_html, 35),
             ("log", s_log, 35), ("access_log", s_nginx, 12), ("email_thread", s_email_thread, 30),
             ("kyc_form", s_kyc, 30), ("ocr", s_ocr, 35), ("whatsapp", s_whatsapp, 35), ("yaml", s_yaml, 15),
             ("xml", s_xml, 12), ("url_query", s_url, 15), ("sql", s_sql, 12), ("python", s_python, 10),
             ("long_document", lambda rng: s_long(rng), 24)]


def cat_structure(C):
    for name, f, n in STRUCTURE:
        for _ in range(n):
            C.add(f"structure/{name}", f)


# --------------------------------------------------------------------------------------
# 6. context: field names and labels that make bank_account / bare ABHA
# --------------------------------------------------------------------------------------

BANK_CONTEXT = [
    ("json_account_no", '{"account_no": "{x}"}'),
    ("json_acctNumber", '{"beneficiary": {"name": "{full}", "acctNumber": "{x}"}}'),
    ("json_number_value", '{"accountNumber": {x}, "branch": "{city}"}'),
    ("query_acctNumber", "acctNumber={x}&ifsc={ifsc}"),
    ("a_c-no", "a/c-no: {x}"),
    ("ACCOUNT_NUMBER_colon", "ACCOUNT NUMBER: {x}"),
    ("khata_sankhya", "khata sankhya {x} hai, {bank} mein"),
    ("devanagari_khata_sankhya", "खाता संख्या {x}"),
    ("AccountNo", "AccountNo {x}"),
    ("acct_num", "acct_num={x}"),
    ("beneficiary_ac_no", "Beneficiary A/C No. {x}"),
    ("yaml_bank_account", "bank_account: \"{x}\""),
    ("acct_dot_no", "Acct. No.: {x}"),
    ("xml_accountNumber", "<accountNumber>{x}</accountNumber>"),
    ("account-number", "account-number {x}"),
    ("sb_ac", "SB a/c {x} at {bank}"),
    ("ca_acct", "CA Acct {x}"),
    ("khaata_no", "khaata no. {x}"),
    ("bank_khata", "{bank} khata {x} band karna hai"),
    ("savings_account_sentence", "Credit {amt} to savings account {x} at {bank}."),
    ("debit_ac_sentence", "Please debit my a/c {x} for the EMI."),
    ("beneficiaryAccountNumber", "beneficiaryAccountNumber: {x}"),
    ("creditorAcct", "creditorAcct = {x}"),
    ("ac_joint", "A/C {x} (joint, {city})"),
    ("payee_account", "payee_account={x};ifsc={ifsc}"),
    ("account_hash", "Account #{x}"),
    ("acc_no", "acc no {x}"),
    ("devanagari_bank_khata", "मेरा बैंक खाता {x} है"),
]
ABHA_CONTEXT = [
    ("json_abha_id", '{"abha_id": "{x}"}'), ("healthId", "healthId={x}"), ("ABHA_number", "ABHA number {x}"),
    ("Health_ID_colon", "Health ID: {x}"), ("ABHA_No", "ABHA No. {x} linked"), ("json_abha", '{"abha": "{x}", "ward": "B"}'),
    ("health_id_card", "health id card {x} ready"), ("abhaNumber", "abhaNumber: {x}"),
    ("devanagari_abha", "आभा (ABHA) संख्या {x}"), ("ayushman", "Ayushman Bharat ABHA {x}"),
]


def cat_context(C):
    for name, frame in BANK_CONTEXT:
        for _ in range(5):
            def mk(rng, frame=frame):
                slots = {"x": [E("bank_account", gen_bank(rng))]}
                if "{ifsc}" in frame:
                    slots["ifsc"] = [E("ifsc", gen_ifsc(rng))]
                return fill(rng, frame, **slots)
            C.add(f"context/{name}/bank_account", mk)
    for name, frame in ABHA_CONTEXT:
        for _ in range(4):
            C.add(f"context/{name}/abha", lambda rng, frame=frame: fill(rng, frame, x=[E("abha", gen_abha(rng))]))




# --------------------------------------------------------------------------------------
# 6b. table: a column header's context words apply to every cell of the column
# --------------------------------------------------------------------------------------

ACCOUNT_HEADERS = ["Account No", "Account Number", "A/C No", "acct_no", "Acct Number", "Khata No",
                   "खाता संख्या", "Beneficiary Account", "Account No."]
NEG_HEADERS = ["Invoice", "Invoice No", "Order ID", "Amount (paise)", "Order Number", "Shipment ID", "Receipt No"]
ABHA_HEADERS = ["ABHA ID", "Health ID", "ABHA Number", "ABHA No"]


def render_table(rng, fmt, header, rows):
    """header: list of str; rows: list of lists of piece-lists."""
    out = []
    if fmt == "markdown":
        out += ["| ", " | ".join(header), " |\n|", "|".join(rng.choice(["---", ":---", "---:"]) for _ in header), "|\n"]
        for r in rows:
            out.append("|")
            for c in r:
                out += [" ", c, " |"]
            out.append("\n")
        return out
    sep = "," if fmt == "csv" else "\t"
    quote = rng.random() < (0.3 if fmt == "csv" else 0.8)

    def cell(c):
        return ['"', c, '"'] if quote else [c]
    for i, h in enumerate(header):
        out += ([sep] if i else []) + cell(h)
    out.append("\r\n" if rng.random() < 0.2 else "\n")
    for r in rows:
        for i, c in enumerate(r):
            out += ([sep] if i else []) + cell(c)
        out.append("\n")
    return out


def balance(rng):
    return "%d.%02d" % (rng.randint(100, 999999), rng.randint(0, 99))


def iso_date(rng):
    return "20%02d-%02d-%02d" % (rng.randint(10, 26), rng.randint(1, 12), rng.randint(1, 28))


TABLE_INTROS = ["", "Here is the payout sheet:\n", "Summarise this table:\n", "Find duplicates in:\n",
                "Sort by the second column:\n", "From the March export -\n"]


def t_accounts(rng, fmt):
    acol = rng.choice(ACCOUNT_HEADERS)
    extra = rng.sample(["Name", "Bank", "Branch", "IFSC", "Type", "Balance", "Opened", "Status"], rng.randint(2, 4))
    cols = extra[:]
    cols.insert(rng.randint(0, len(cols)), acol)
    rows = []
    for _ in range(rng.randint(3, 8)):
        r = []
        for c in cols:
            if c == acol:
                r.append([E("bank_account", gen_bank(rng))])
            elif c == "Name":
                r.append([fullname(rng)])
            elif c == "Bank":
                r.append([rng.choice(BANKS)])
            elif c == "Branch":
                r.append([rng.choice(CITIES)])
            elif c == "IFSC":
                r.append([E("ifsc", gen_ifsc(rng))])
            elif c == "Type":
                r.append([rng.choice(["Savings", "Current", "Salary", "NRO", "NRE"])])
            elif c == "Balance":
                r.append([balance(rng)])
            elif c == "Opened":
                r.append([iso_date(rng)])
            else:
                r.append([rng.choice(["Active", "Dormant", "Closed", "Frozen"])])
        rows.append(r)
    return [rng.choice(TABLE_INTROS), render_table(rng, fmt, cols, rows)]


def t_negative(rng, fmt):
    ncol = rng.choice(NEG_HEADERS)
    extra = rng.sample(["Customer", "City", "Date", "Status", "Items", "Courier"], rng.randint(2, 4))
    cols = extra[:]
    cols.insert(rng.randint(0, len(cols)), ncol)
    rows = []
    for _ in range(rng.randint(3, 8)):
        r = []
        for c in cols:
            if c == ncol:
                r.append([N(gen_bank(rng), "bank_account")])
            elif c == "Customer":
                r.append([fullname(rng)])
            elif c == "City":
                r.append([rng.choice(CITIES)])
            elif c == "Date":
                r.append([iso_date(rng)])
            elif c == "Items":
                r.append([str(rng.randint(1, 40))])
            elif c == "Courier":
                r.append([rng.choice(["Delhivery", "Blue Dart", "DTDC", "India Post", "Ekart"])])
            else:
                r.append([rng.choice(["Paid", "Pending", "Shipped", "Cancelled"])])
        rows.append(r)
    return [rng.choice(["", "Summarise this table:\n", "Which orders are pending?\n", "Find duplicates in:\n"]),
            render_table(rng, fmt, cols, rows)]


def t_abha(rng, fmt, negative=False):
    hcol = rng.choice(["Tracking ID", "Consignment", "Serial No"]) if negative else rng.choice(ABHA_HEADERS)
    extra = rng.sample(["Patient" if not negative else "Customer", "Age", "Ward" if not negative else "Depot",
                        "Admitted" if not negative else "Dispatched", "Doctor" if not negative else "Agent"],
                       rng.randint(2, 4))
    cols = extra[:]
    cols.insert(rng.randint(0, len(cols)), hcol)
    rows = []
    for _ in range(rng.randint(3, 8)):
        r = []
        for c in cols:
            if c == hcol:
                d = gen_abha(rng)
                r.append([N(d, "abha")] if negative else [E("abha", d)])
            elif c in ("Patient", "Customer"):
                r.append([fullname(rng)])
            elif c == "Age":
                r.append([str(rng.randint(1, 90))])
            elif c in ("Ward", "Depot"):
                r.append([rng.choice(["General", "ICU", "Maternity", "Ortho", "Paediatrics"]) if not negative
                          else rng.choice(CITIES)])
            elif c in ("Admitted", "Dispatched"):
                r.append([iso_date(rng)])
            else:
                r.append(["Dr. " + rng.choice(LAST) if not negative else rng.choice(FIRST)])
        rows.append(r)
    intro = rng.choice(["", "OPD register:\n", "Patients admitted this week:\n"]) if not negative else \
        rng.choice(["", "Dispatch register:\n", "Parcels this week:\n"])
    return [intro, render_table(rng, fmt, cols, rows)]


def cat_table(C):
    for fmt in ("csv", "tsv", "markdown"):
        for _ in range(30):
            C.add(f"table/{fmt}_account_column/bank_account", lambda rng, fmt=fmt: t_accounts(rng, fmt))
        for _ in range(15):
            C.add(f"table/{fmt}_invoice_order_amount_column", lambda rng, fmt=fmt: t_negative(rng, fmt))
        for _ in range(12):
            C.add(f"table/{fmt}_abha_column/abha", lambda rng, fmt=fmt: t_abha(rng, fmt))
        for _ in range(5):
            C.add(f"table/{fmt}_bare14_no_health_header", lambda rng, fmt=fmt: t_abha(rng, fmt, negative=True))


# --------------------------------------------------------------------------------------
# 7. precision
# --------------------------------------------------------------------------------------

PAN_LOWER_POS = ["pan: {x}", "my pan is {x}", "PAN no. {x} (typed in lowercase)", "pan card {x}", "pan_number={x}",
                 "PAN - {x}", "mera pan {x} hai", "Pan {x} linked to the return", "update pan to {x} please",
                 "पैन {x}", "{name}'s PAN is {x}", "\"pan\": \"{x}\""]
PAN_LOWER_NEG = ["token {x} in the url", "the coupon code {x} expired", "use promo {x} at checkout",
                 "short link id {x} is broken", "session key {x} timed out", "Tracking tag {x} on the parcel",
                 "{name}'s wifi password was {x}", "the slug {x} is already taken"]
LABELLED_NOT_PHONE = ["Order {x} has shipped to {city}.", "order no. {x} is delayed by {n} days", "Invoice #{x} is overdue.",
                      "invoice no: {x}", "UTR {x} for the NEFT credit", "UTR no. {x} received", "AWB {x} is out for delivery",
                      "AWB no. {x} ({city})", "Ticket {x} was escalated to L2.", "ticket id {x}", "Txn ID {x} failed",
                      "txn {x} reversed", "Ref: {x}", "ref no {x} please quote this", "Order ID: {x}", "Booking ID {x} confirmed",
                      "Policy no. {x} renewed", "Receipt no. {x}", "Challan no. {x} paid", "Application no. {x} under review"]
LANDLINE_STD = [("080", 8), ("022", 8), ("044", 8), ("040", 8), ("033", 8), ("011", 8), ("020", 8), ("079", 8),
                ("0124", 7), ("0141", 7), ("0484", 7), ("0422", 7), ("0712", 7), ("0522", 7), ("0135", 7), ("0891", 7)]
LANDLINE_FRAMES = ["Our {city} office number is {x}.", "Reception: {x} (9 am to 6 pm)", "Call {x} for appointments.",
                   "Branch contact {x}", "The clinic's line is {x}, ask for {name}.", "For escalation dial {x}."]
LABELLED_LANDLINE = ["Landline: {x}", "landline {x} is dead since {day}", "Office: {x}", "office no. {x}", "Tel: {x}",
                     "Tel. {x} (reception)", "Fax {x}", "fax: {x}"]
VERSION_FRAMES = ["Upgrade to version {x} before {day}.", "Running v {x} on all nodes", "ver {x} has the fix",
                  "build {x} broke the tests", "Firmware version: {x}", "App ver. {x} crashes on login",
                  "Version {x} was released in {month}.", "we pinned version {x} in the lockfile"]
IP_FRAMES = ["connect to {x} over ssh", "ping {x} from the jump host", "server {x} is down again",
             "DNS is set to {x}", "gateway {x} does not respond", "The login came from {x} at {hour}.",
             "add {x} to the allow list", "curl http://{x}:8080/health times out"]
NOT_UPI = ["npm i react@next", "npm install lodash@latest --save", "yarn add typescript@beta", "pnpm add vite@canary",
           "ssh {u}@localhost -p 2222", "git clone git@github:team/app.git", "git push git@gitlab:infra/ops.git main",
           "ssh root@devbox and restart nginx", "ping {u}@intranet on chat", "deploy {u}@staging first",
           "install eslint@latest globally", "docker tag api {u}@stable"]
UPI_KNOWN_FRAMES = ["pay {x} for the groceries", "{name} asked me to send it to {x}", "refund went to {x}",
                    "collect from {x}", "is {x} your handle?"]
UPI_WORD_FRAMES = ["UPI id: {x}", "VPA {x}", "gpay {x}", "PhonePe: {x}", "BHIM {x} pe bhejo", "my upi is {x}",
                   "paytm karo {x} pe"]
UNKNOWN_NO_WORD = ["ask {x} for the file", "{x} is my handle on the forum", "the Jira user {x} left", "login as {x}"]
CLOUD_FRAMES = ["AWS account {x}", "aws_account_id = {x}", "AWS Account ID: {x}", "the AWS account {x} in ap-south-1",
                "GCP project number {x}", "Azure account id {x}", "Move the bucket to AWS account {x} by {day}.",
                "Billing for AWS account {x} spiked in {month}.", "gcp project number: {x}",
                "role arn lives in AWS account {x}"]


def cloud_id(rng):
    while True:
        d = rng.choice(["0", "1", rng.choice("23456789")]) + rdigits(rng, 11)
        if d[0] in "23456789" and verhoeff_ok(d):
            continue
        if d.startswith("91") and d[2] in "6789":
            continue
        return d


def std_landline(rng, style=None):
    code, n = rng.choice(LANDLINE_STD)
    sub = rng.choice("2345") + rdigits(rng, n - 1)
    style = style or rng.randint(0, 4)
    if n == 8:
        return [code + "-" + sub[:4] + " " + sub[4:], code + " " + sub[:4] + " " + sub[4:], "(" + code + ") " + sub,
                code + "-" + sub, "+91 " + code[1:] + " " + sub[:4] + " " + sub[4:]][style]
    return [code + " " + sub[:3] + " " + sub[3:], code + "-" + sub, code + " " + sub, "(" + code + ") " + sub[:3] + " " + sub[3:],
            "+91 " + code[1:] + " " + sub][style]


def cat_precision(C):
    for fr in PAN_LOWER_POS:
        for _ in range(3):
            C.add("precision/lowercase_pan_with_word/pan", lambda rng, fr=fr: fill(rng, fr, x=[E("pan", gen_pan(rng).lower())]))
    for fr in PAN_LOWER_NEG:
        for _ in range(4):
            C.add("precision/lowercase_pan_without_word", lambda rng, fr=fr: fill(rng, fr, x=[N(gen_pan(rng).lower(), "pan")]))
    for _ in range(12):
        C.add("precision/uppercase_pan_without_word/pan",
              lambda rng: fill(rng, rng.choice(["token {x} in the url", "code {x} on the slip", "{x} was on the letter"]),
                               x=[E("pan", gen_pan(rng))]))
    for fr in LABELLED_NOT_PHONE:
        for _ in range(3):
            def mk(rng, fr=fr):
                d = gen_phone(rng)
                return fill(rng, fr, x=[N(d if rng.random() < 0.85 else d[:5] + " " + d[5:], "phone")])
            C.add("precision/labelled_10_digit_not_phone", mk)
    for _ in range(20):
        def mk(rng):
            fr = rng.choice(LABELLED_NOT_PHONE).rstrip(".")
            ph, lab = any_value(rng, "phone")
            d = gen_phone(rng)
            return [fill(rng, fr, x=[N(d, "phone")]), rng.choice(["; if it is late ", " — for queries "]), lab, " ",
                    E("phone", ph), rng.choice([".", "", " please"])]
        C.add("precision/labelled_10_digit_and_real_phone/phone", mk)
    for fr in LANDLINE_FRAMES:
        for _ in range(6):
            C.add("precision/std_code_landline", lambda rng, fr=fr: fill(rng, fr, x=[N(std_landline(rng), "phone")]))
    for fr in LABELLED_LANDLINE:
        for _ in range(4):
            def mk(rng, fr=fr):
                v = std_landline(rng) if rng.random() < 0.5 else fmt_phone(rng, gen_phone(rng), rng.choice(["bare", "sp", "hy"]))
                return fill(rng, fr, x=[N(v, "phone")])
            C.add("precision/labelled_landline_office_tel_fax", mk)
    for _ in range(12):
        def mk(rng):
            ph, lab = any_value(rng, "phone")
            return [fill(rng, rng.choice(LANDLINE_FRAMES).rstrip("."), x=[N(std_landline(rng), "phone")]),
                    "; ", lab, " ", E("phone", ph)]
        C.add("precision/landline_and_mobile/phone", mk)
    for fr in VERSION_FRAMES:
        for _ in range(4):
            def mk(rng, fr=fr):
                v = "%d.%d.%d.%d" % (rng.randint(1, 20), rng.randint(0, 30), rng.randint(0, 99), rng.randint(0, 255))
                return fill(rng, fr, x=[N(v, "ip_address")])
            C.add("precision/version_not_ip", mk)
    for fr in ["Windows build 10.0.{n}041.1 is required", "Chrome version 120.0.6099.{n}09 fixed it",
               "build 10.0.19041.1 on the kiosk"]:
        for _ in range(2):
            C.add("precision/version_not_ip", lambda rng, fr=fr: fill(rng, fr))
    for fr in IP_FRAMES:
        for _ in range(4):
            C.add("precision/plain_ip/ip_address", lambda rng, fr=fr: fill(rng, fr, x=[E("ip_address", gen_ipv4(rng) if "http" in fr else gen_ip(rng))]))
    for _ in range(10):
        def mk(rng):
            v = "%d.%d.%d.%d" % (rng.randint(1, 9), rng.randint(0, 20), rng.randint(0, 20), rng.randint(0, 99))
            return ["v ", N(v, "ip_address"), rng.choice([" deployed to ", " is live on ", " rolled out at "]),
                    E("ip_address", gen_ipv4(rng))]
        C.add("precision/version_and_ip/ip_address", mk)
    for fr in NOT_UPI:
        for _ in range(2):
            C.add("precision/dev_handle_not_upi", lambda rng, fr=fr: fill(rng, fr.replace("{u}", rng.choice(["deploy", "ravi", "admin", "ci"]))))
    for fr in UPI_KNOWN_FRAMES:
        for _ in range(4):
            C.add("precision/known_psp/upi_id", lambda rng, fr=fr: fill(rng, fr, x=[E("upi_id", gen_upi(rng))]))
    for fr in UPI_WORD_FRAMES:
        for _ in range(4):
            C.add("precision/unknown_psp_with_upi_word/upi_id",
                  lambda rng, fr=fr: fill(rng, fr, x=[E("upi_id", gen_upi(rng, rng.choice(UPI_UNKNOWN)))]))
    for fr in UNKNOWN_NO_WORD:
        for _ in range(4):
            C.add("precision/unknown_psp_without_word",
                  lambda rng, fr=fr: fill(rng, fr, x=[N(gen_upi(rng, rng.choice(UPI_UNKNOWN)), "upi_id")]))
    for _ in range(10):
        def mk(rng):
            f, l = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
            v = f + "@" + rng.choice(UPI_KNOWN) + rng.choice([".in", ".com", ".co.in"])
            return fill(rng, rng.choice(["Write to {x} for the statement.", "email {x}", "mail: {x}"]), x=[E("email", v)])
        C.add("precision/psp_name_with_dotted_domain/email", mk)
    for _ in range(10):
        C.add("precision/phone_at_psp/upi_id", lambda rng: fill(rng, rng.choice(UPI_KNOWN_FRAMES + ["Send ₹500 to {x} today"]),
                                                                x=[E("upi_id", gen_phone(rng) + "@" + rng.choice(UPI_KNOWN))]))
    for _ in range(10):
        C.add("precision/phone_in_email/email", lambda rng: fill(rng, rng.choice(["Write to {x}", "email {x} for details"]),
                                                                 x=[E("email", gen_phone(rng) + "@" + rng.choice(DOMAINS))]))
    for _ in range(10):
        C.add("precision/pan_in_email_local_part/email",
              lambda rng: fill(rng, rng.choice(["Write to {x}", "the login is {x}", "mail {x} the forms"]),
                               x=[E("email", rng.choice([gen_pan(rng), gen_pan(rng).lower()]) + "@" + rng.choice(DOMAINS))]))
    for _ in range(12):
        C.add("precision/pan_inside_gstin/gstin", lambda rng: fill(rng, rng.choice(["GSTIN {x} of the supplier",
                                                                                    "Bill to GSTIN: {x}", "gst no {x}"]),
                                                                   x=[E("gstin", gen_gstin(rng))]))
    for _ in range(8):
        def mk(rng):
            g = gen_gstin(rng)
            return ["GSTIN ", E("gstin", g), " and PAN ", E("pan", g[2:12]), rng.choice([" match", " are on the bill"])]
        C.add("precision/gstin_and_its_pan/gstin", mk)
    for fr in CLOUD_FRAMES:
        for _ in range(4):
            def mk(rng, fr=fr):
                d = cloud_id(rng)
                v = d if rng.random() < 0.85 else d[:4] + "-" + d[4:8] + "-" + d[8:]
                return fill(rng, fr, x=[N(v, "bank_account")])
            C.add("precision/cloud_account_id_not_bank", mk)
    for _ in range(10):
        def mk(rng):
            return ["AWS account ", N(cloud_id(rng), "bank_account"), rng.choice([" is billed monthly. ", " pays the invoice. "]),
                    rng.choice(["Refunds go to our bank account ", "Salary goes to savings a/c ", "Our current account is "]),
                    E("bank_account", gen_bank(rng)), "."]
        C.add("precision/cloud_id_and_bank_account/bank_account", mk)


# --------------------------------------------------------------------------------------
# 8. trap: public text that looks like PII
# --------------------------------------------------------------------------------------

def isbn13(rng):
    body = "978" + rng.choice(["93", "81"]) + rdigits(rng, 7)
    s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
    d = body + str((10 - s % 10) % 10)
    return "%s-%s-%s-%s-%s" % (d[:3], d[3:5], d[5:9], d[9:12], d[12])


def uuid4(rng):
    h = hexs(rng, 32)
    h = h[:12] + "4" + h[13:16] + rng.choice("89ab") + h[17:]
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def bad_verhoeff(rng, n, first="23456789"):
    while True:
        d = rdigits(rng, n, first)
        if not verhoeff_ok(d) and not card_valid(d):
            return d


def bad_luhn_card(rng):
    while True:
        d, _ = gen_card(rng, rng.choice(["visa", "mastercard", "rupay"]), 16)
        d = d[:-1] + str((int(d[-1]) + rng.randint(1, 9)) % 10)
        if not verhoeff_ok(d):
            return d


def bad_gstin(rng):
    g = gen_gstin(rng)
    c = rng.choice([x for x in B36 if x != g[14]])
    return g[:14] + c


def bad_pan(rng):
    p = gen_pan(rng)
    return p[:3] + rng.choice("DEIKMNOQRSUVWXYZ") + p[4:]


TRAPS = {
    "order_id": ["Order {o} shipped to {city} on time.", "Your Amazon order {amz} is out for delivery.",
                 "Flipkart order OD{d18} was cancelled.", "ORD-2026-{d6} is closed.", "Order {o} — {amt} refunded"],
    "utr": ["UTR {utr12} credited {amt}.", "NEFT UTR SBINR5{d15} pending", "IMPS ref {utr12} reversed",
            "RTGS UTR HDFCR5{d15} settled"],
    "isbn": ["ISBN {isbn} is the second edition.", "Cite the book (ISBN {isbn}) in the bibliography.",
             "Library copy ISBN {isbn}"],
    "hash": ["sha256: {sha256}", "MD5 {md5} matches the download", "checksum {sha1} failed"],
    "git_commit": ["Revert commit {sha1} please.", "cherry-pick {short} onto main", "Fixed in {short} ({sha1})"],
    "uuid": ["request id {uuid} failed", "trace {uuid} shows a timeout", "tenant {uuid} was deleted"],
    "aws_arn": ["arn:aws:iam::{cloud}:role/deploy-bot", "Attach policy to arn:aws:lambda:ap-south-1:{cloud}:function:kyc",
                "bucket arn:aws:s3:::kyc-scans-{city_l} is private"],
    "masked": ["Masked Aadhaar XXXX XXXX {d4} on the receipt.", "card **** **** **** {d4} was charged {amt}",
               "Card 4111 XXXX XXXX {d4} expired", "mobile 98XXXXXX{d2} verified", "Aadhaar xxxx-xxxx-{d4}",
               "A/c XXXXXXXX{d4} credited", "PAN XXXXX{d4}X on file", "UPI r***@okaxis used", "VID XXXX XXXX XXXX {d4}",
               "email r****@gmail.com changed"],
    "checksum_fail": ["Aadhaar {badaadhaar} has a typo", "card {badcard} was declined (wrong check digit)",
                      "VID {badvid} is not valid", "GSTIN {badgstin} has a bad check character",
                      "SKU {badpan} is our product code", "Passport J0{d6} is malformed",
                      "IFSC HDFC1{d6} looks wrong", "IFSC SBIN00{d3} is too short",
                      "vehicle {fakestate} 12 AB {d4} is not Indian", "DL MH12 18{d2}{d7} has a bad year",
                      "IP {badip} is not an address", "1.2.3 and 10.20.30 are not addresses",
                      "mobile 5{d9} is not Indian", "email {u}@localhost bounced", "account 12345678 is too short",
                      "ABHA 91-{d4}-{d4}-{d2} is incomplete"],
    "voter_like_codes": ["Invoice INV{d7} and order ORD{d7} are closed.", "Ticket TKT{d7} resolved",
                         "Txn TXN{d7} refunded", "PNR{d7} confirmed", "REQ{d7} approved by {name}"],
    "timestamp": ["Transaction at 2026-{mm}-{dd} {hms} was flagged", "epoch {epoch} in the log", "ts={epoch_ms}",
                  "Logged at {dd}/{mm}/2026 {hms} IST"],
    "date": ["DOB {dd}-{mm}-19{yy}, joined {dd}/{mm}/20{yj}", "Due date {dd}.{mm}.2026", "Meeting on {dd} {month} 2026 at {hour}"],
    "amount": ["₹1,23,456.00 credited", "Rs. 45,000/- paid on {day}", "INR 2,50,000 sanctioned", "Total ₹{amtbig} incl. GST",
               "Loan of ₹{lakh} lakh at 8.5%"],
    "pincode": ["PIN {pin}, {city}", "Deliver to pincode {pin}", "{city} {pin} is the nearest hub"],
    "phone_like_1_to_5": ["Call {p15} for details", "Helpline 1800 {d3} {d4} works 24x7", "Toll-free 1800-{d3}-{d4}",
                          "Customer care 1860 {d3} {d4}", "US office +1 415 555 0{d3}", "London +44 20 7946 0{d3}",
                          "Dubai +971 4 {d3} {d4}", "Singapore +65 6{d3} {d4}"],
    "misc_numbers": ["OTP {d6} expires in 5 minutes", "Room {d4}, Block C", "IPC section 420 applies", "RFC 5322 defines it",
                     "coordinates 19.0760, 72.8777", "CVV {d3} must not be stored", "expiry 12/{yy}", "PIN {d4} changed",
                     "Version 3.2.1 released", "Reading {d3}.{d2} kWh this month"],
    "out_of_scope": ["base64 MjM0NSA2Nzg5IDAxMjQ= is encoded", "my number is nine eight seven six five four three two one zero",
                     "Aadhaar two three four five, six seven eight nine, zero one two four", "hex 0x{hex12} in memory"],
    "plain": ["Write a haiku about the monsoon in {city}.", "What is the capital of Telangana?",
              "Explain compound interest with ₹10,000 at 7% for 3 years.", "Translate 'good morning' into Tamil.",
              "Plan a 3-day trip to {city} for a family of 4.", "Summarise the RBI circular on digital lending.",
              "How do I file ITR-2 online?", "List the documents needed for a new passport (no numbers please)."],
}


def trap_fill(rng, frame):
    def rep(m):
        k = m.group(1)
        g = {
            "o": lambda: rdigits(rng, rng.choice([9, 10, 11, 12, 14]), "12345"),
            "amz": lambda: "%s-%s-%s" % (rdigits(rng, 3), rdigits(rng, 7), rdigits(rng, 7)),
            "d18": lambda: rdigits(rng, 18), "d15": lambda: rdigits(rng, 15), "d9": lambda: rdigits(rng, 9),
            "d7": lambda: rdigits(rng, 7), "d6": lambda: rdigits(rng, 6), "d4": lambda: rdigits(rng, 4),
            "d3": lambda: rdigits(rng, 3), "d2": lambda: rdigits(rng, 2),
            "utr12": lambda: rdigits(rng, 12, "123456789"), "isbn": lambda: isbn13(rng),
            "sha256": lambda: hexs(rng, 64), "md5": lambda: hexs(rng, 32), "sha1": lambda: hexs(rng, 40),
            "short": lambda: hexs(rng, 7), "uuid": lambda: uuid4(rng), "cloud": lambda: cloud_id(rng),
            "city_l": lambda: rng.choice(CITIES).lower(), "badaadhaar": lambda: fmt_aadhaar(rng, bad_verhoeff(rng, 12)),
            "badcard": lambda: fmt_card(rng, bad_luhn_card(rng)), "badvid": lambda: fmt_vid(rng, bad_verhoeff(rng, 16, "123456789")),
            "badgstin": lambda: bad_gstin(rng), "badpan": lambda: bad_pan(rng), "fakestate": lambda: rng.choice(FAKE_STATES),
            "badip": lambda: rng.choice(["999.1.1.1", "256.%d.%d.%d" % (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)),
                                         "10.300.1.%d" % rng.randint(1, 254), "1.2.3.4.5"]),
            "u": lambda: rng.choice(FIRST).lower(), "mm": lambda: "%02d" % rng.randint(1, 12), "dd": lambda: "%02d" % rng.randint(1, 28),
            "yy": lambda: "%02d" % rng.randint(26, 99), "yj": lambda: "%02d" % rng.randint(10, 25), "hms": lambda: "%02d:%02d:%02d" % (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
            "epoch": lambda: str(rng.randint(1600000000, 1799999999)), "epoch_ms": lambda: str(rng.randint(1600000000000, 1799999999999)),
            "amtbig": lambda: "%d,%02d,%03d.%02d" % (rng.randint(1, 99), rng.randint(0, 99), rng.randint(0, 999), rng.randint(0, 99)),
            "lakh": lambda: str(rng.randint(2, 95)), "pin": lambda: str(rng.randint(110001, 855999)),
            "p15": lambda: rdigits(rng, 10, "12345"), "hex12": lambda: hexs(rng, 12),
        }.get(k)
        return g() if g else "{" + k + "}"
    return re.sub(r"\{(\w+)\}", rep, frame)


def cat_trap(C):
    for sub, frames in TRAPS.items():
        reps = 4 if len(frames) < 6 else 3
        if sub in ("checksum_fail", "masked"):
            reps = 4
        for fr in frames:
            for _ in range(reps):
                def mk(rng, fr=fr, sub=sub):
                    text = trap_fill(rng, fr)
                    text = fill(rng, text) if "{" in text else text
                    flat = "".join(p for p in flatten(text) if isinstance(p, str)) if isinstance(text, list) else text
                    if "+44" in flat or "+65" in flat or "+971" in flat:
                        return [N(flat, "phone")]
                    if sub == "isbn" or fr.startswith("ABHA 91-"):
                        return [NL(flat, "phone", "aadhaar", "bank_account")]
                    return [flat]
                C.add(f"trap/{sub}", mk)


# --------------------------------------------------------------------------------------
# 9. hinglish, devanagari, other Indic scripts
# --------------------------------------------------------------------------------------

HINGLISH = {
    "aadhaar": ["bhai mera aadhar number {x} hai, check kar lo", "adhar card no {x} galat aa raha hai",
                "aadhaar wala number {x} daal do form mein", "mere papa ka adhar {x} hai", "Aadhar card {x} link karna hai"],
    "aadhaar_vid": ["VID {x} se eKYC ho jayega kya?", "virtual id {x} generate kiya maine"],
    "payment_card": ["card number {x} se payment fail ho gaya", "mera debit card {x} block karo jaldi"],
    "bank_account": ["mera khata number {x} hai {bank} mein", "khaata sankhya {x} pe paisa bhejo",
                     "account no {x} mein salary aati hai", "{bank} ka a/c {x} band karwana hai"],
    "upi_id": ["paise {x} pe bhej do bhai", "GPay kar do {x} pe", "mera UPI {x} hai", "phonepe pe {x} daalo"],
    "abha": ["mera ABHA number {x} hai hospital ke liye", "health id {x} se report mil jayegi?"],
    "pan": ["pan card number {x} hai mera", "mera pan {x} hai, ITR bhar do", "PAN {x} update karna hai"],
    "passport": ["passport number {x} hai, visa ke liye", "mera passport {x} expire hone wala hai"],
    "voter_id": ["voter card ka number {x} hai", "EPIC number {x} se naam check karo"],
    "driving_licence": ["DL number {x} renew karwana hai", "licence {x} pe challan aaya hai"],
    "phone": ["mobile no {x} pe call karo", "phone no. {x} pe WhatsApp kar dena", "mera number {x} hai, miss call dena",
              "is number pe baat karo {x}", "bhai mobile {x} band hai kya?"],
    "email": ["mera email {x} hai, wahan bhej do", "mail kar do {x} pe"],
    "gstin": ["hamara GST number {x} hai", "GSTIN {x} bill pe daalna mat bhoolna"],
    "ifsc": ["IFSC code {x} daal do", "branch ka ifsc {x} hai"],
    "vehicle_registration": ["gaadi ka number {x} hai", "meri bike {x} chori ho gayi", "car number {x} ka FASTag"],
    "ip_address": ["server ka IP {x} hai, ping karo", "{x} se login ho raha hai"],
}
HINGLISH_NEG = ["order no {o} kab aayega?", "tracking AWB {o} hai", "mera pincode {pin} hai", "invoice {o} ka payment pending hai",
                "OTP {d6} aaya hai", "bhai kal {hour} baje milte hain", "{amt} ka bill aaya"]

DEVA_DIGITS = "०१२३४५६७८९"
SCRIPT_DIGITS = {"bengali": "০১২৩৪৫৬৭৮৯", "gujarati": "૦૧૨૩૪૫૬૭૮૯", "gurmukhi": "੦੧੨੩੪੫੬੭੮੯", "tamil": "௦௧௨௩௪௫௬௭௮௯",
                 "telugu": "౦౧౨౩౪౫౬౭౮౯", "kannada": "೦೧೨೩೪೫೬೭೮೯", "malayalam": "൦൧൨൩൪൫൬൭൮൯", "odia": "୦୧୨୩୪୫୬୭୮୯"}


def to_script(v, digits):
    return "".join(digits[int(c)] if c.isascii() and c.isdigit() else c for c in v)


DEVA = {
    "aadhaar": ["मेरा आधार नंबर {x} है।", "आधार संख्या {x} सत्यापित करें।", "कृपया आधार {x} को रिकॉर्ड में जोड़ें।",
                "ग्राहक ने आधार कार्ड {x} दिया है।"],
    "aadhaar_vid": ["वर्चुअल आईडी {x} से ई-केवाईसी करें।", "VID {x} नया बनाया है।"],
    "payment_card": ["कार्ड नंबर {x} ब्लॉक करें।", "मेरे डेबिट कार्ड {x} से पैसे कट गए।"],
    "bank_account": ["खाता संख्या {x} में पैसे जमा करें।", "मेरा बैंक खाता {x} है।", "खाता नं. {x} (SBI)"],
    "upi_id": ["यूपीआई आईडी {x} पर भुगतान करें।", "{x} पर ₹500 भेज दो।"],
    "abha": ["आभा नंबर {x} अस्पताल में जमा किया।", "ABHA संख्या {x} से रिपोर्ट जोड़ें।"],
    "pan": ["मेरा पैन {x} है।", "पैन कार्ड संख्या {x} आयकर रिटर्न के लिए।"],
    "passport": ["पासपोर्ट संख्या {x} है।", "पासपोर्ट {x} का नवीनीकरण करना है।"],
    "voter_id": ["मतदाता पहचान पत्र संख्या {x} है।", "EPIC {x} से नाम खोजें।"],
    "driving_licence": ["ड्राइविंग लाइसेंस {x} का नवीनीकरण करें।", "लाइसेंस {x} पर चालान है।"],
    "phone": ["मेरा मोबाइल नंबर {x} है।", "मोबाइल {x} पर कॉल करें।", "फ़ोन {x} पर संदेश भेजें।"],
    "email": ["ईमेल {x} पर भेजें।", "मेरा ईमेल पता {x} है।"],
    "gstin": ["जीएसटी नंबर {x} बिल पर छापें।", "GSTIN {x} दर्ज करें।"],
    "ifsc": ["आईएफएससी कोड {x} है।", "शाखा का IFSC {x} है।"],
    "vehicle_registration": ["गाड़ी नंबर {x} पार्किंग में है।", "वाहन संख्या {x} का बीमा करवाना है।"],
    "ip_address": ["सर्वर का आईपी {x} है।", "लॉगिन {x} से हुआ।"],
}
DEVA_NUMERIC = {"aadhaar", "aadhaar_vid", "payment_card", "bank_account", "abha", "phone"}
DEVA_NEG = ["ऑर्डर संख्या {o} कल पहुँचेगा।", "पिन कोड {pin} है।", "तारीख {date} को बैठक है।", "राशि ₹{amt} जमा हुई।",
            "हेल्पलाइन १८०० {d3} {d4} पर कॉल करें।", "मास्क किया आधार XXXX XXXX {d4} है।", "ओटीपी {d6} किसी को न बताएं।"]
INDIC = {
    "bengali": {"aadhaar": "আমার আধার নম্বর {x}", "phone": "মোবাইল নম্বর {x} এ ফোন করুন", "bank_account": "A/C {x} তে টাকা পাঠান"},
    "gujarati": {"aadhaar": "મારો આધાર નંબર {x} છે", "phone": "મોબાઇલ નંબર {x} પર કૉલ કરો", "bank_account": "ખાતા નંબર (A/C) {x}"},
    "gurmukhi": {"aadhaar": "ਮੇਰਾ ਆਧਾਰ ਨੰਬਰ {x} ਹੈ", "phone": "ਮੋਬਾਈਲ {x} ਤੇ ਫ਼ੋਨ ਕਰੋ", "bank_account": "A/C {x} ਵਿੱਚ ਜਮ੍ਹਾਂ ਕਰੋ"},
    "tamil": {"aadhaar": "என் ஆதார் எண் {x}", "phone": "கைபேசி எண் {x}", "bank_account": "A/C {x} கணக்கில் செலுத்தவும்"},
    "telugu": {"aadhaar": "నా ఆధార్ సంఖ్య {x}", "phone": "ఫోన్ {x} కు కాల్ చేయండి", "bank_account": "A/C {x} లో జమ చేయండి"},
    "kannada": {"aadhaar": "ನನ್ನ ಆಧಾರ್ ಸಂಖ್ಯೆ {x}", "phone": "ಮೊಬೈಲ್ ಸಂಖ್ಯೆ {x}", "bank_account": "A/C {x} ಗೆ ಹಣ ಕಳುಹಿಸಿ"},
    "malayalam": {"aadhaar": "എന്റെ ആധാർ നമ്പർ {x}", "phone": "മൊബൈൽ നമ്പർ {x}", "bank_account": "A/C {x} ൽ അടയ്ക്കുക"},
    "odia": {"aadhaar": "ମୋର ଆଧାର ନମ୍ବର {x}", "phone": "ମୋବାଇଲ {x} କୁ କଲ କରନ୍ତୁ", "bank_account": "A/C {x} ରେ ଜମା କରନ୍ତୁ"},
}


def numeric_value(rng, t):
    if t == "aadhaar":
        return fmt_aadhaar(rng, gen_aadhaar(rng))
    if t == "aadhaar_vid":
        return fmt_vid(rng, gen_vid(rng))
    if t == "payment_card":
        return card_value(rng, network=rng.choice(["visa", "mastercard", "rupay"]), length=16)[0]
    if t == "bank_account":
        return gen_bank(rng)
    if t == "abha":
        return fmt_abha(rng, gen_abha(rng), rng.choice(["hy", "sp"]))
    return fmt_phone(rng, gen_phone(rng), rng.choice(["bare", "sp", "hy", "p91sp55", "p91"]))


def cat_hinglish(C):
    for t, frames in HINGLISH.items():
        for fr in frames:
            for _ in range(2 if len(frames) > 2 else 4):
                def mk(rng, t=t, fr=fr):
                    v = any_value(rng, t)[0]
                    if t == "abha" and "ABHA" not in fr and re.fullmatch(r"[0-9]{14}", v):
                        v = fmt_abha(rng, v, "hy")
                    return fill(rng, fr, x=[E(t, v)])
                C.add(f"hinglish/{t}/{t}", mk)
    for _ in range(10):
        C.add("hinglish/lowercase_pan/pan", lambda rng: fill(rng, rng.choice(["mera pan {x} hai", "pan card {x} ka photo bhejo"]),
                                                             x=[E("pan", gen_pan(rng).lower())]))
    for fr in HINGLISH_NEG:
        for _ in range(3):
            def mk(rng, fr=fr):
                text = trap_fill(rng, fr.replace("{o}", "{O}"))
                text = text.replace("{O}", gen_phone(rng) if rng.random() < 0.6 else rdigits(rng, 12, "1"))
                return [N(fill_str(rng, text), "phone")]
            C.add("hinglish/negative", mk)
    for _ in range(15):
        def mk(rng):
            a, b = rng.sample(list(HINGLISH), 2)
            if {a, b} == {"bank_account", "abha"}:
                raise Reject("ambiguous pair")
            va, vb = any_value(rng, a)[0], any_value(rng, b)[0]
            if a == "abha" and re.fullmatch(r"[0-9]{14}", va):
                va = fmt_abha(rng, va, "hy")
            if b == "abha" and re.fullmatch(r"[0-9]{14}", vb):
                vb = fmt_abha(rng, vb, "hy")
            return [fill(rng, rng.choice(HINGLISH[a]), x=[E(a, va)]), rng.choice([", aur ", ". Aur haan, ", " — "]),
                    fill(rng, rng.choice(HINGLISH[b]), x=[E(b, vb)])]
        C.add("hinglish/two_values", mk)


def fill_str(rng, s):
    return "".join(p if isinstance(p, str) else "" for p in flatten(fill(rng, s)))


def cat_devanagari(C):
    for t, frames in DEVA.items():
        for fr in frames:
            n = 3 if t in DEVA_NUMERIC else 2
            for i in range(n):
                def mk(rng, t=t, fr=fr, i=i):
                    if t in DEVA_NUMERIC:
                        v = numeric_value(rng, t)
                        if i < 2:
                            v = to_script(v, DEVA_DIGITS)
                    else:
                        v = any_value(rng, t)[0]
                    return fill(rng, fr, x=[E(t, v)])
                sub = ("devanagari_digits" if (t in DEVA_NUMERIC and i < 2) else "ascii_digits")
                C.add(f"devanagari/{sub}/{t}", mk)
    for fr in DEVA_NEG:
        for _ in range(3):
            def mk(rng, fr=fr):
                text = trap_fill(rng, fr.replace("{o}", "{O}"))
                text = text.replace("{O}", to_script(rdigits(rng, rng.choice([10, 12]), "12345"), DEVA_DIGITS))
                text = fill_str(rng, text)
                if rng.random() < 0.5:
                    text = to_script(text, DEVA_DIGITS)
                return [N(text, "phone")]
            C.add("devanagari/negative", mk)
    for _ in range(10):
        def mk(rng):
            a = numeric_value(rng, "aadhaar")
            p = numeric_value(rng, "phone")
            return ["नाम: ", rng.choice(["रमेश कुमार", "सुनीता देवी", "अनिल शर्मा", "प्रिया सिंह"]), "\nआधार: ",
                    E("aadhaar", to_script(a, DEVA_DIGITS)), "\nमोबाइल: ", E("phone", p if rng.random() < 0.5 else to_script(p, DEVA_DIGITS)),
                    "\nपता: ", rng.choice(["इंदौर", "पटना", "जयपुर", "लखनऊ"])]
        C.add("devanagari/form", mk)


def cat_indic(C):
    for script, frames in INDIC.items():
        for t, fr in frames.items():
            for _ in range(3):
                def mk(rng, t=t, fr=fr, script=script):
                    v = to_script(numeric_value(rng, t), SCRIPT_DIGITS[script])
                    return fill(rng, fr, x=[E(t, v)])
                C.add(f"indic/{script}/{t}", mk)


# --------------------------------------------------------------------------------------
# 10. tie: one span valid as two types; context words decide, else the higher tier
# --------------------------------------------------------------------------------------

def both_card_and_vid(rng):
    while True:
        d, _ = gen_card(rng, rng.choice(["visa", "mastercard", "rupay"]), 16)
        for _ in range(60):
            b = d[:1] + rdigits(rng, 14)
            c = b + luhn_digit(b)
            if card_prefix(c) and verhoeff_ok(c):
                return c


def phone_and_aadhaar(rng):
    while True:
        d = "91" + gen_phone(rng)
        if verhoeff_ok(d):
            return d


def cat_tie(C):
    spec = [
        ("card_vid_card_word", "payment_card", both_card_and_vid,
         ["debit card {x} was swallowed by the ATM", "RuPay card {x}", "my credit card number is {x}", "card: {x}"]),
        ("card_vid_vid_word", "aadhaar_vid", both_card_and_vid,
         ["VID {x} for eKYC", "my virtual id is {x}", "Aadhaar Virtual ID: {x}", "use VID {x} at the counter"]),
        ("card_vid_no_context", "payment_card", both_card_and_vid,
         ["number {x} on file", "noted {x} from the letter", "{x}", "the sixteen digits were {x}"]),
        ("mobile_aadhaar_phone_word", "phone", phone_and_aadhaar,
         ["mobile {x} verified", "phone: {x}", "call me on {x}", "WhatsApp {x}"]),
        ("mobile_aadhaar_aadhaar_word", "aadhaar", phone_and_aadhaar,
         ["Aadhaar {x} verified", "UID {x}", "aadhaar no. {x} for KYC", "my Aadhaar is {x}"]),
        ("mobile_aadhaar_no_context", "aadhaar", phone_and_aadhaar,
         ["number {x} on file", "noted {x} from the letter", "{x}", "the twelve digits were {x}"]),
    ]
    for sub, t, gen, frames in spec:
        for fr in frames:
            for _ in range(2):
                def mk(rng, t=t, gen=gen, fr=fr):
                    d = gen(rng)
                    if t in ("payment_card", "aadhaar_vid") and rng.random() < 0.5:
                        d = group(d, [4, 4, 4, 4], rng.choice([" ", "-"]))
                    return fill(rng, fr, x=[E(t, d)])
                C.add(f"tie/{sub}/{t}", mk)


# --------------------------------------------------------------------------------------
# 11. combo: several of the above at once; structure/long_document
# --------------------------------------------------------------------------------------

NESTED = [("**`", "`**"), ("(**", "**)"), ("[_", "_]"), ('"*', '*"'), ("<b>**", "**</b>"), ("~~_", "_~~"),
          ("“`", "`”"), ("{'", "'}"), ("|**", "**|"), ("(“", "”)")]


def cat_combo(C):
    for t in TYPES:
        for _ in range(3):
            def mk(rng, t=t):
                v, lab = any_value(rng, t)
                L, R = rng.choice(NESTED)
                return fill(rng, frame_for(rng, t), x=[lab, rng.choice([" ", ": ", ":"]), L, E(t, v), R])
            C.add(f"combo/nested_markup/{t}", mk)
        for _ in range(2):
            def mk(rng, t=t):
                v, lab = any_value(rng, t)
                s = lookalike(rng, v, rng.choice(["fullwidth", "bold", "monospace"]), partial=rng.random() < 0.5)
                s = insert_inside(rng, s, list(INVIS.values()), rng.randint(1, 2))
                L, R = rng.choice(BOUNDARY_WRAPS)[1:]
                return fill(rng, frame_for(rng, t), x=[rng.choice(GLUE[t]), rng.choice([":", "=", "#"]), L, E(t, s), R])
            C.add(f"combo/glued_label_lookalike_invisible/{t}", mk)
    for t in GROUPINGS:
        k = len(GROUPINGS[t]) - 1
        for _ in range(4):
            def mk(rng, t=t, k=k):
                d, lab = sep_digits(rng, t)
                seps = [rng.choice([rng.choice(WS) * rng.randint(1, 3), rng.choice(list(PUNCT.values())),
                                    rng.choice(list(LINEBREAKS.values()))]) for _ in range(k)]
                if sum(1 for x in seps if "\n" in x or "\r" in x) > 1:
                    raise Reject("two line breaks")
                v = group(d, GROUPINGS[t], seps)
                v = lookalike(rng, v, rng.choice(["fullwidth", "bold", "circled", "monospace"]), partial=rng.random() < 0.5)
                if rng.random() < 0.5:
                    v = insert_inside(rng, v, list(INVIS.values()), 1)
                L, R = rng.choice(BOUNDARY_WRAPS)[1:]
                return fill(rng, rng.choice(SEP_FRAMES), lab=lab, x=[L, E(t, v), R])
            C.add(f"combo/separator_lookalike_wrapper/{t}", mk)
        for _ in range(3):
            def mk(rng, t=t, k=k):
                d, lab = sep_digits(rng, t)
                v = group(d, GROUPINGS[t], [rng.choice([" ", "-", "\u00a0", "\u2013"]) for _ in range(k)])
                v = insert_inside(rng, to_script(v, DEVA_DIGITS), list(INVIS.values()), rng.randint(1, 2))
                return fill(rng, rng.choice(["{lab} **{x}** है।", "कृपया {lab} `{x}` जाँचें।", "{lab}: {x} ✅"]), lab=lab,
                            x=[E(t, v)])
            C.add(f"combo/devanagari_invisible_markup/{t}", mk)


FILLER = ["The branch will remain closed on the second Saturday.", "Please carry the original documents for verification.",
          "Our team has reviewed the application in detail.", "The customer requested a callback in the evening.",
          "Interest rates were revised last quarter.", "Kindly ignore this mail if already submitted.",
          "The monsoon has delayed deliveries across the region.", "All documents must be self-attested.",
          "This is a system generated message.", "We regret the inconvenience caused.",
          "The relationship manager will be on leave next week.", "Processing usually takes three to five working days.",
          "Photocopies should be clear and readable.", "The courier will call before arriving.",
          "Do not share your OTP with anyone.", "Our office timings are 10 am to 5 pm.",
          "Senior citizens get priority at the counter.", "The new policy takes effect from the first of next month.",
          "Please reply in English or Hindi.", "Attach a cancelled cheque with the form."]


def s_long(rng):
    n_ent = rng.randint(2, 5)
    types = rng.sample([t for t in TYPES if t != "abha"], n_ent)
    sents = [[rng.choice(["Dear Sir/Madam,", "Hello " + rng.choice(FIRST) + ",", "To whom it may concern,", "Hi,"]), "\n\n"]]
    body = [[f] for f in rng.sample(FILLER, rng.randint(5, 10))]
    for t in types:
        v, lab = any_value(rng, t)
        body.insert(rng.randint(0, len(body)), fill(rng, frame_for(rng, t), x=[lab, " ", E(t, v)]))
    for i, b in enumerate(body):
        sents.append(b)
        sents.append(rng.choice([" ", " ", "\n", "\n\n"]) if i < len(body) - 1 else "")
    sents.append("\n\nRegards,\n" + fullname(rng) + "\n" + rng.choice(COMPANIES))
    return sents


def main():
    C = Corpus()
    for f in CATEGORIES:
        f(C)
    with open(OUT, "w", encoding="utf-8", newline="\n") as fh:
        for line in C.lines:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    by_cat = collections.Counter(l["category"].split("/")[0] for l in C.lines)
    by_sub = collections.Counter("/".join(l["category"].split("/")[:2]) for l in C.lines)
    by_type = collections.Counter(e["type"] for l in C.lines for e in l["entities"])
    by_tier = collections.Counter(l["tier"] for l in C.lines)
    size = os.path.getsize(OUT)
    print(f"wrote {OUT}: {len(C.lines)} lines, {size} bytes")
    print("lines per category:")
    for k in sorted(by_cat):
        print(f"  {k:14s} {by_cat[k]:5d}")
    print("entities per type:")
    for k in TYPES:
        print(f"  {k:22s} {by_type[k]:5d}")
    print("lines per tier:", dict(sorted(by_tier.items(), key=lambda kv: TIERS.index(kv[0]))))
    if "-v" in sys.argv:
        for k in sorted(by_sub):
            print(f"  {k:45s} {by_sub[k]:5d}")


CATEGORIES = [cat_boundary, cat_separator, cat_invisible, cat_lookalike, cat_structure, cat_context,
              cat_table, cat_precision, cat_trap, cat_hinglish, cat_devanagari, cat_indic, cat_tie,
              cat_combo]

if __name__ == "__main__":
    main()
