#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The `#include "..."` graph of the sources has no cycle (ctest lint/includes).

Model: a module is a noun's pair of files in one folder (broker/client.c and
broker/client.h are the module broker/client; a file without a header, such
as broker/ttyhubd.c, is a module of its own).  Module A depends on module B
when one of A's files includes B's header.  A quoted include is looked up in
the including file's folder first, then in the other folders; one that is in
none (a system header written with quotes) is not an edge.

Two checks, both from that one graph:
- Per folder: the strongly connected components of the folder's modules.
  A component of more than one module is a cycle and fails the check, unless
  it is listed, exactly, in ALLOWED_CYCLES for its folder.  A listed cycle
  that is gone fails too, so the list only ever shrinks.
- Across folders: every edge between folders must be in FOLDER_DEPS (the
  layering the CMake include directories also enforce).

Usage: check-includes.py [--graph FOLDER] [SOURCE_DIR]
SOURCE_DIR defaults to the repository this script is in.  --graph prints the
folder's modules and what each includes (to redraw the graph in server.h).
Before checking, the script checks itself on a made-up tree with a cycle and
a forbidden edge, so it cannot pass by finding nothing.  Only the standard
library is used.
"""
import argparse
import os
import re
import sys
import tempfile

FOLDERS = ('common', 'proto', 'qmp', 'broker', 'cli', 'ssh-front', 'web-front')

# Which folder may include which folder's headers.
FOLDER_DEPS = {
    'common': set(),
    'proto': {'common'},
    'qmp': {'common'},
    'broker': {'proto', 'qmp', 'common'},
    'cli': {'proto', 'common'},
    'ssh-front': {'proto', 'common'},
    'web-front': {'proto', 'common'},
}

# Known cycles, per folder, each the exact set of its modules.  Empty: every
# folder is a DAG.  Should one ever have to be tolerated for a while, list it
# here exactly; a listed cycle that no longer exists fails too.
ALLOWED_CYCLES = {}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def scan(root):
    """Modules of every folder: {(folder, module): set of included header names}."""
    modules = {}
    headers = {}  # header name -> [folders that have it]
    for folder in FOLDERS:
        path = os.path.join(root, folder)
        for name in sorted(os.listdir(path)):
            stem, ext = os.path.splitext(name)
            if ext not in ('.c', '.h'):
                continue
            with open(os.path.join(path, name), encoding='utf-8') as f:
                text = f.read()
            modules.setdefault((folder, stem), set()).update(INCLUDE_RE.findall(text))
            if ext == '.h':
                headers.setdefault(name, []).append(folder)
    return modules, headers


def resolve(folder, header, headers):
    """The (folder, module) a header written in folder names, or None."""
    where = headers.get(os.path.basename(header))
    if not where:
        return None
    stem = os.path.splitext(os.path.basename(header))[0]
    if folder in where:
        return (folder, stem)
    # Several folders have it: prefer one the includer may depend on.
    allowed = [w for w in where if w in FOLDER_DEPS[folder]]
    return ((allowed or where)[0], stem)


def edges_of(modules, headers):
    """{module: set of modules it depends on}, without self-edges."""
    graph = {m: set() for m in modules}
    for (folder, stem), includes in modules.items():
        for header in includes:
            target = resolve(folder, header, headers)
            if target and target != (folder, stem):
                graph[(folder, stem)].add(target)
    return graph


def components(nodes, graph):
    """Strongly connected components (Tarjan, iterative) of graph restricted to nodes."""
    index = {}
    low = {}
    on_stack = set()
    stack = []
    result = []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start] & nodes)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child] & nodes))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.add(member)
                    if member == node:
                        break
                result.append(comp)
    return result


def check(root):
    """Every problem found, as lines of text (none: the graph is clean)."""
    modules, headers = scan(root)
    graph = edges_of(modules, headers)
    problems = []

    for folder in FOLDERS:
        nodes = {m for m in graph if m[0] == folder}
        cycles = [{stem for _, stem in comp} for comp in components(nodes, graph)
                  if len(comp) > 1]
        allowed = ALLOWED_CYCLES.get(folder, [])
        for cycle in cycles:
            if cycle in allowed:
                print('%s/: known cycle (allow-listed): %s' % (folder, ', '.join(sorted(cycle))))
                continue
            inner = {m: {t[1] for t in graph[(folder, m)] if t[0] == folder} & cycle
                     for m in sorted(cycle)}
            problems.append('%s/: include cycle among %s:\n%s' % (
                folder, ', '.join(sorted(cycle)),
                '\n'.join('    %s -> %s' % (m, ', '.join(sorted(t)))
                          for m, t in inner.items())))
        for entry in allowed:
            if entry not in cycles:
                problems.append('%s/: allow-listed cycle %s is gone: remove it from '
                                'ALLOWED_CYCLES' % (folder, ', '.join(sorted(entry))))

    for (folder, stem), targets in sorted(graph.items()):
        for tfolder, tstem in sorted(targets):
            if tfolder != folder and tfolder not in FOLDER_DEPS[folder]:
                problems.append('%s/%s includes %s/%s.h: %s/ may not depend on %s/' % (
                    folder, stem, tfolder, tstem, folder, tfolder))
    return problems


def self_test():
    """check() on a made-up tree: a broker/ cycle and a cli/ -> broker/ edge must be found."""
    files = {
        'broker/a.c': '#include "a.h"\n#include "b.h"\n',
        'broker/b.h': '#include "c.h"\n#include "util.h"\n',
        'broker/c.c': '#include "c.h"\n#include "a.h"\n',
        'broker/c.h': '', 'broker/a.h': '#include <stdio.h>\n',
        'common/util.h': '', 'cli/x.c': '#include "a.h"\n#include "nowhere.h"\n',
    }
    with tempfile.TemporaryDirectory() as root:
        for folder in FOLDERS:
            os.mkdir(os.path.join(root, folder))
        for name, text in files.items():
            with open(os.path.join(root, name), 'w', encoding='utf-8') as f:
                f.write(text)
        saved = dict(ALLOWED_CYCLES)
        ALLOWED_CYCLES.clear()
        try:
            problems = check(root)
        finally:
            ALLOWED_CYCLES.update(saved)
    cycle = [p for p in problems if p.startswith('broker/: include cycle among a, b, c:')]
    edge = [p for p in problems if p.startswith('cli/x includes broker/a.h')]
    if len(problems) != 2 or not cycle or not edge:
        print('self-test failed: expected a broker/ cycle and a cli/ edge, got:\n%s'
              % '\n'.join(problems))
        return False
    return True


def print_graph(root, folder):
    modules, headers = scan(root)
    graph = edges_of(modules, headers)
    for (f, stem), targets in sorted(graph.items()):
        if f != folder:
            continue
        names = sorted(t[1] if t[0] == folder else '%s/%s' % t for t in targets)
        print('%s -> %s' % (stem, ', '.join(names)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--graph', metavar='FOLDER', choices=FOLDERS,
                        help="print a folder's module graph instead of checking")
    parser.add_argument('root', nargs='?',
                        default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = parser.parse_args()
    if args.graph:
        print_graph(args.root, args.graph)
        return 0
    if not self_test():
        return 1
    problems = check(args.root)
    for p in problems:
        print(p)
    if problems:
        print('FAIL: %d problem(s) in the include graph' % len(problems))
        return 1
    print('ok: no include cycle, no forbidden folder edge')
    return 0


if __name__ == '__main__':
    sys.exit(main())
