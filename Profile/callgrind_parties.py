"""Per-referral instruction counts by party and by function, from two callgrind runs of
`rujuk bench` with --separate-threads (see callgrind.sh): the larger run minus the smaller,
divided by the referrals between them."""
import glob
import re
import sys

ROW = re.compile(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*\S)\s*$")

# A thread's party, by a function that only that party's threads run (first match wins).
PARTIES = [
    ("sender (the bench client)", "BenchClientC3run"),
    ("broker: router thread", "RouterLoopC3run"),
    ("broker: committer thread", "PolledWorkerC6submityyxycFyyYbcfU_"),
    ("recipient adapter: link thread", "BrokerLinkC3run"),
    ("recipient adapter: opening seals in parallel", "openReferrals"),
    ("checkpointers (both stores)", "CheckpointerC5startyyFyyYbcfU0_"),
]
# The bench client's own preparation of each referral (sealing it as the sender's adapter would,
# on its own host), done before the clock starts: not part of the path.
PREPARATION = "BenchClientC8referral"


def rows(path):
    counts = {}
    with open(path) as text:
        for line in text:
            match = ROW.match(line)
            if match and "PROGRAM TOTALS" not in match.group(2):
                counts[match.group(2)] = counts.get(match.group(2), 0) + int(match.group(1).replace(",", ""))
    return counts


def total(path):
    with open(path) as text:
        for line in text:
            match = ROW.match(line)
            if match and "PROGRAM TOTALS" in match.group(2):
                return int(match.group(1).replace(",", ""))
    return 0


def party(inclusive):
    names = " ".join(inclusive)
    for name, marker in PARTIES:
        if marker in names:
            return name
    objects = {}
    for function, count in inclusive.items():
        where = re.search(r"\[([^\]]*)\]$", function)
        if where:
            objects[where.group(1).split("/")[-1]] = objects.get(where.group(1).split("/")[-1], 0) + count
    if any(name.startswith(("libzmq", "libsodium")) for name, _ in sorted(objects.items(), key=lambda kv: -kv[1])[:2]):
        return "libzmq I/O threads (TCP, CurveZMQ)"
    return "other threads"


def load(directory):
    """Per party: its threads' total instructions and their functions' own counts."""
    parties = {}
    for self_file in glob.glob(directory + "/callgrind-*.self"):
        inclusive_file = self_file[: -len(".self")] + ".inclusive"
        inclusive = rows(inclusive_file)
        name = party(inclusive)
        own = rows(self_file)
        count = total(self_file)
        preparation = max((value for key, value in inclusive.items() if PREPARATION in key), default=0)
        entry = parties.setdefault(name, {"total": 0, "functions": {}})
        entry["total"] += count - preparation
        for function, value in own.items():
            entry["functions"][function] = entry["functions"].get(function, 0) + value
    return parties


def short(function):
    where = re.search(r"\[([^\]]*)\]$", function)
    library = where.group(1).split("/")[-1] if where else ""
    name = re.sub(r"\s*\[[^\]]*\]$", "", function)
    name = name.split(":", 1)[1] if ":" in name else name
    return name[:96], library


def main():
    small, large, referrals = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
    names = sorted(set(small) | set(large), key=lambda n: -(large.get(n, {"total": 0})["total"] - small.get(n, {"total": 0})["total"]))
    per = {n: (large.get(n, {"total": 0})["total"] - small.get(n, {"total": 0})["total"]) / referrals for n in names}
    whole = sum(per.values())
    print("instructions per referral on the path (user space; the bench client's preparation left out): %.0f" % whole)
    for name in names:
        print("  %9.0f  %5.1f%%  %s" % (per[name], 100 * per[name] / whole, name))
    print()
    print("the functions that count most, their own instructions per referral, over all parties:")
    functions = {}
    for name in names:
        for source, sign in ((large.get(name), 1), (small.get(name), -1)):
            if not source or name == "sender (the bench client)":
                continue
            for function, value in source["functions"].items():
                functions[function] = functions.get(function, 0) + sign * value / referrals
    for function, value in sorted(functions.items(), key=lambda kv: -kv[1])[:30]:
        name, library = short(function)
        print("  %9.0f  %5.1f%%  %s  (%s)" % (value, 100 * value / whole, name, library))
    objects = {}
    for function, value in functions.items():
        objects[short(function)[1]] = objects.get(short(function)[1], 0) + value
    print()
    print("by library (the sender left out):")
    for library, value in sorted(objects.items(), key=lambda kv: -kv[1])[:10]:
        print("  %9.0f  %5.1f%%  %s" % (value, 100 * value / whole, library or "?"))


if __name__ == "__main__":
    main()
