#!/usr/bin/env python3
"""Check registrations on Kamailio's own side, through its ctl socket.

Usage: check-bindings.py CTL AORS_FILE [CONTACT_SUFFIX] [--exact] [--save FILE]

Every AoR listed in AORS_FILE (one a line) must be in the "location" table
with at least one Contact, each ending in CONTACT_SUFFIX when given (for
example "@127.0.0.1:5090"). With --exact the table must hold no other AoR
(usrloc:registered_users equals the number listed and `ul.dump brief`, when
its reply fits, lists no other AoR).

Why not one `kamcmd ul.dump`: for thousands of AoRs its reply exceeds
kamcmd's reply buffer ("ERROR: reply too big"). Each AoR is read with
`ul.lookup location AOR` instead, all through one kamcmd connection
(interactive mode fed on stdin: 1000 lookups take about 0.3 s).
Exit 0 when every check holds, 1 otherwise; a one-line summary on stderr.
"""

import re
import subprocess
import sys


def kamcmd(ctl, *args, stdin=None, timeout=60):
    return subprocess.run(
        ["kamcmd", "-s", ctl, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    exact = "--exact" in argv
    save = None
    if "--save" in argv:
        save = argv[argv.index("--save") + 1]
        args.remove(save)
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    ctl, aors_file = args[0], args[1]
    suffix = args[2] if len(args) > 2 else ""
    want = [line.strip() for line in open(aors_file) if line.strip()]
    problems = []

    out = kamcmd(ctl, stdin="".join(f"ul.lookup location {a}\n" for a in want)).stdout
    if save:
        with open(save, "w") as f:
            f.write(out)
    blocks = re.split(r"kamcmd> ul\.lookup location (\S+)\n", out)
    found = {}
    for i in range(1, len(blocks) - 1, 2):
        aor, body = blocks[i], blocks[i + 1]
        if re.search(r"AoR:\s*" + re.escape(aor) + r"\s", body):
            found[aor] = re.findall(r"Address:\s*(\S+)", body)

    missing = [a for a in want if a not in found]
    if missing:
        problems.append(f"{len(missing)} AoRs not in the location table, e.g. {missing[:5]}")
    nocontact = [a for a, cs in found.items() if not cs]
    if nocontact:
        problems.append(f"{len(nocontact)} AoRs without contacts, e.g. {nocontact[:3]}")
    bad = [(a, c) for a, cs in found.items() for c in cs if suffix and not c.endswith(suffix)]
    if bad:
        problems.append(f"{len(bad)} contacts not ending in {suffix!r}, e.g. {bad[:3]}")

    stats = kamcmd(ctl, "stats.get_statistics", "usrloc:", timeout=10).stdout
    m = re.search(r"usrloc:registered_users = (\d+)", stats)
    users = int(m.group(1)) if m else -1
    m = re.search(r"usrloc:location_contacts = (\d+)", stats)
    contacts = int(m.group(1)) if m else -1

    dump_note = "ul.dump brief: too big for kamcmd, skipped"
    brief = kamcmd(ctl, "ul.dump", "brief", timeout=30)
    if brief.returncode == 0 and "AoRs" in brief.stdout and "reply too big" not in brief.stderr:
        listed = re.findall(r"AoR:\s*(\S+)", brief.stdout)
        dump_note = f"ul.dump brief: {len(listed)} AoRs"
        if exact:
            extra = sorted(set(listed) - set(want))
            if extra or len(listed) != len(want):
                problems.append(f"ul.dump brief lists {len(listed)} AoRs, extra {extra[:5]}")
    if exact and users != len(want):
        problems.append(f"usrloc:registered_users = {users}, expected {len(want)}")

    ncontacts = sum(len(cs) for cs in found.values())
    print(
        f"kamailio: {len(found)}/{len(want)} AoRs found by ul.lookup with {ncontacts} contacts; "
        f"registered_users={users} location_contacts={contacts}; {dump_note}",
        file=sys.stderr,
    )
    for p in problems:
        print("binding check:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
