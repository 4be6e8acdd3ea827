#!/usr/bin/env python3
"""Writes an mdoc(7) man page from a program's `--experimental-dump-help` JSON (swift-argument-parser's ToolInfo,
serialization version 0), then appends a hand-written mdoc file (EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES, ...).

    PROGRAM --experimental-dump-help | scripts/manpage.py --section 1 --date 2026-11-25 --extra man/extra/PROGRAM.mdoc

Standard library only. Text is kept as UTF-8 (man runs preconv); only what roff and mdoc treat specially is escaped.

The page: NAME (the abstract), SYNOPSIS (one form per subcommand with all its options), DESCRIPTION (the
discussion), OPTIONS (for a program with subcommands: the options every subcommand takes, listed once, with --version
and --help), SUBCOMMANDS (one subsection per subcommand: abstract, discussion without the paragraphs DESCRIPTION
already has, its own options). Each option shows its names, its value name and "(default: X)" when it has a default
worth showing (not for a flag that is off, nor for an empty list). ArgumentParser's generated `help` subcommand is
left out; --help covers it.
"""

import argparse
import json
import re
import sys

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# On a macro line, mdoc calls a token that is a macro name and treats a lone delimiter specially.
MACROS = set("""%A %B %C %D %I %J %N %O %P %Q %R %T %U %V Ac Ad An Ao Ap Aq Ar At Bc Bd Bf Bk Bl Bo Bq Brc Bro Brq Bsx
Bt Bx Cd Cm D1 Db Dc Dd Dl Do Dq Dt Dv Dx Ec Ed Ef Ek El Em En Eo Er Es Ev Ex Fa Fc Fd Fl Fn Fo Fr Ft Fx Hf Ic In It Lb
Li Lk Lp Ms Mt Nd Nm No Ns Nx Oc Oo Op Os Ot Ox Pa Pc Pf Po Pp Pq Qc Ql Qo Qq Re Rs Rv Sc Sh Sm So Sq Ss St Sx Sy Ta
Tn Ud Ux Va Vt Xc Xo Xr""".split())
DELIMITERS = set(".,;:?!()[]|")
GENERIC = {"help", "version"}  # ArgumentParser's own --help and --version: listed once, never in a synopsis


# In a word, an option ("--watch", "-" for stdin, "head -1", "(-0"): its hyphens are minus signs (\\-, which man
# renders as the ASCII "-" a reader can paste).
OPTION = re.compile(r"(?<![\w-])-[\w-]*")
# Words never to hyphenate (\\% in front): options, and code such as {"id":…}, NAME_WITH_UNDERSCORES, a/path.
# (Plain words keep groff's hyphenation.)
CODE = re.compile(r"[{}\"=_@/|<>]")


def minus(text):
    return OPTION.sub(lambda m: m.group(0).replace("-", "\\-"), text)


def protect(word):
    """One word of text, already escaped: option dashes as \\-, and not hyphenated when it is an option or code."""
    marked = minus(word)
    if CODE.search(word):
        # Code may still break after a comma (\\:, no hyphen shown): {"id":…,"name":…} can be longer than a line.
        marked = "\\%" + re.sub(r",(?=.)", ",\\:", marked)
    elif marked != word:
        marked = "\\%" + marked
    return marked


def protect_words(text):
    return re.sub(r"\S+", lambda m: protect(m.group(0)), text)


def text_line(line):
    """One roff text line: backslashes as \\e, option dashes as \\-, options and code not hyphenated, a leading
    control character or blank neutralised with \\&."""
    line = protect_words(line.rstrip().replace("\\", "\\e"))
    if line[:1] in (".", "'", " ", "\t"):
        line = "\\&" + line
    return line


def split_paragraphs(text):
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def paragraphs(text, skip=()):
    """Text lines for a help string: paragraphs (split on blank lines) separated by .Pp, leaving out those in skip."""
    out = []
    for paragraph in split_paragraphs(text):
        if paragraph.strip() in skip:
            continue
        if out:
            out.append(".Pp")
        out.extend(text_line(line) for line in paragraph.split("\n"))
    return out


def arg(token):
    """One argument on a macro line, taken literally."""
    token = token.replace("\\", "\\e").replace('"', "\\(dq")
    if token in MACROS or (token and set(token) <= DELIMITERS):
        token = "\\&" + token
    if not token or re.search(r"\s", token):
        token = '"' + token + '"'
    return token


def words(text):
    """Free text as macro arguments, word by word (so no word is read as a macro)."""
    return " ".join(protect(arg(word)) for word in text.split())


def flag_name(name):
    prefix = {"short": "", "long": "-", "longWithSingleDash": ""}[name["kind"]]
    return "Fl " + arg(prefix + name["name"])


def visible(items):
    return [item for item in items or [] if item.get("shouldDisplay", True)]


def is_generic(argument):
    names = argument.get("names") or []
    return any(n["kind"] == "long" and n["name"] in GENERIC for n in names)


def subcommands(command):
    # ArgumentParser adds a `help` subcommand to every command with subcommands or none; it says nothing --help
    # does not.
    return [c for c in visible(command.get("subcommands")) if c["commandName"] != "help"]


def synopsis_item(argument):
    """The mdoc for one argument in a synopsis, e.g. `Op Fl -server Ar host:port`."""
    if argument["kind"] == "positional":
        body = "Ar " + arg(argument.get("valueName") or "arg")
        if argument.get("isRepeating"):
            body += " ..."
    else:
        preferred = argument.get("preferredName") or argument["names"][0]
        body = flag_name(preferred)
        if argument["kind"] == "option":
            body += " Ar " + arg(argument.get("valueName") or "value")
    if not argument.get("isOptional"):
        return body
    if argument.get("isRepeating") and argument["kind"] != "positional":
        return "Oo " + body + " Oc Ns ..."
    return "Op " + body


def default_value(argument):
    """The default, when it says something: not for a flag that is off, not for an empty list."""
    value = argument.get("defaultValue")
    if value is None or value in ("", "[]") or (argument["kind"] == "flag" and value == "false"):
        return None
    return value if value.strip() == value else '"' + value + '"'


def option_item(argument):
    """A .It entry of an options list: names and value name, then the help text and the default."""
    if argument["kind"] == "positional":
        head = "Ar " + arg(argument.get("valueName") or "arg")
        if argument.get("isRepeating"):
            head += " ..."
    else:
        head = " , ".join(flag_name(n) for n in argument["names"])
        if argument["kind"] == "option":
            head += " Ar " + arg(argument.get("valueName") or "value")
    out = [".It " + head]
    if argument.get("abstract"):
        out.extend(paragraphs(argument["abstract"]))
    value = default_value(argument)
    if value is not None:
        # "(default: X)" on the help text's last line, never broken or hyphenated.
        default = "\\%(default:\\ " + minus(value.replace("\\", "\\e")).replace(" ", "\\ ") + ")"
        if out[-1].startswith("."):
            out.append("\\&" + default)
        else:
            out[-1] += " " + default
    values = argument.get("allValues") or []
    descriptions = argument.get("allValueDescriptions") or {}
    help_words = set(re.findall(r"[\w-]+", (argument.get("abstract") or "") + " " + (argument.get("discussion") or "")))
    if descriptions:
        out.append(".Bl -tag -width Ds")
        for value in values:
            out.append(".It " + arg(value))
            out.extend(paragraphs(descriptions.get(value, "")))
        out.append(".El")
    elif values and not set(values) <= help_words:
        out.append(text_line("One of: " + ", ".join(values) + "."))
    if argument.get("discussion"):
        out.append(".Pp")
        out.extend(paragraphs(argument["discussion"]))
    return out


def option_list(arguments):
    if not arguments:
        return []
    out = [".Bl -tag -width Ds"]
    for argument in arguments:
        out.extend(option_item(argument))
    out.append(".El")
    return out


def descendants(command, path):
    """(path, command) for the command and every subcommand under it, depth first."""
    result = [(path, command)]
    for sub in subcommands(command):
        result.extend(descendants(sub, path + [sub["commandName"]]))
    return result


def page(tool, section, date, extra):
    command = tool["command"]
    program = command["commandName"]
    year, month, day = (int(part) for part in date.split("-"))
    root_arguments = visible(command.get("arguments"))
    everything = descendants(command, [program])
    has_subcommands = len(everything) > 1
    # What a synopsis shows: every command that runs something (has no subcommands).
    commands = [(path, c) for path, c in everything if not subcommands(c)]

    out = [
        '.\\" Generated by scripts/generate-docs (scripts/manpage.py) from `%s --experimental-dump-help` and '
        "man/extra/%s.mdoc; do not edit." % (program, program),
        ".Dd %s %d, %d" % (MONTHS[month - 1], day, year),
        ".Dt %s %s" % (program.upper(), section),
        ".Os",
        ".Sh NAME",
        ".Nm " + arg(program),
    ]
    out.append(".Nd " + words(command.get("abstract") or program))

    out.append(".Sh SYNOPSIS")
    root_items = [a for a in root_arguments if not is_generic(a)]
    for path, leaf in commands:
        out.append(".Nm")
        if has_subcommands:
            out.extend("." + synopsis_item(a) for a in root_items)
            out.append(".Cm " + " ".join(arg(name) for name in path[1:]))
        # Options first, then operands, as in most synopses.
        for argument in sorted(visible(leaf.get("arguments")), key=lambda a: a["kind"] == "positional"):
            if not is_generic(argument):
                out.append("." + synopsis_item(argument))

    out.append(".Sh DESCRIPTION")
    description = command.get("discussion") or command.get("abstract") or ""
    out.extend(paragraphs(description))
    described = set(p.strip() for p in split_paragraphs(description))

    # Options every subcommand takes (identical definitions) are listed once, under OPTIONS, with the program's own.
    if has_subcommands:
        leaf_arguments = [visible(leaf.get("arguments")) for _, leaf in commands]
        common = [a for a in leaf_arguments[0] if all(a in others for others in leaf_arguments[1:])]
    else:
        common = []
    options = []
    for argument in sorted(common + root_arguments, key=is_generic):  # --version and --help last
        if argument not in options:
            options.append(argument)
    out.append(".Sh OPTIONS")
    if has_subcommands:
        out.append(text_line("Every subcommand takes these options:"))
    out.extend(option_list(options))

    if has_subcommands:
        out.append(".Sh SUBCOMMANDS")
        for path, leaf in everything[1:]:
            out.append(".Ss " + words(" ".join(path[1:])))
            out.extend(paragraphs(leaf.get("abstract") or ""))
            # A paragraph the program's DESCRIPTION already has (the exit statuses every subcommand lists in its
            # --help) is not repeated.
            discussion = paragraphs(leaf.get("discussion") or "", skip=described)
            if discussion:
                out.append(".Pp")
                out.extend(discussion)
            out.extend(option_list([a for a in visible(leaf.get("arguments")) if a not in common]))

    return "\n".join(out) + "\n" + extra


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", required=True, help="manual section, e.g. 1 or 8")
    parser.add_argument("--date", required=True, help="the page's date, YYYY-MM-DD")
    parser.add_argument("--extra", help="an mdoc file appended as it is")
    parser.add_argument("json", nargs="?", help="the --experimental-dump-help output (default: stdin)")
    options = parser.parse_args()
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", options.date):
        parser.error("--date must be YYYY-MM-DD")
    if options.json:
        with open(options.json, "rb") as file:
            tool = json.load(file)
    else:
        tool = json.load(sys.stdin.buffer)
    if tool.get("serializationVersion") != 0:
        sys.exit("manpage.py: unknown dump-help serializationVersion %r" % tool.get("serializationVersion"))
    extra = ""
    if options.extra:
        with open(options.extra, encoding="utf-8") as file:
            extra = file.read()
    sys.stdout.buffer.write(page(tool, options.section, options.date, extra).encode("utf-8"))


if __name__ == "__main__":
    main()
