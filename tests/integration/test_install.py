# SPDX-License-Identifier: MIT
"""Packaging that holds (issue 26): `make install PREFIX=… DESTDIR=…` as a packager runs it, on the
build ctest runs in. Every file lands under the prefix asked for, units included, and every Exec*=
of a unit names the keel installed there; keel.pc names that prefix; the installed keel runs from
its prefix, and from wherever the tree is moved, with no LD_LIBRARY_PATH, and finds its agent's
module (decision 36), which `keel --version` does without; the build tree's keel has no empty
RUNPATH entry (the loader reads one as the current directory); the installed examples
build against libkeel.a with pkg-config (keel-static) and CMake (Keel::keel-static) and need no
libkeel.so; a C++ program that includes every header and takes the address of every function
declared there links and runs."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

SOURCE = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("KEEL_BUILD_DIR")
PREFIX = "/opt/keel-packaged"  # not the build's: the install alone chooses it
# What the loader and the link see of the caller's environment: none of the install's directories.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PKG_CONFIG_PATH", "LD_PRELOAD")}


def sh(*argv, env=None, cwd=None, timeout=300):
    p = subprocess.run(argv, env=env or CLEAN_ENV, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def dynamic(path):
    """The NEEDED libraries and the RUNPATH entries (None when there is no RUNPATH) of an ELF file."""
    out = sh("readelf", "-d", path)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)
    runpath = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", out)
    return needed, (runpath.group(1).split(":") if runpath else None)


def files_under(root):
    """Every file and symbolic link under @root, relative to it."""
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


@unittest.skipUnless(BUILD, "KEEL_BUILD_DIR names the build to install (ctest sets it)")
class Packaged(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="keel-packaged-")
        cls.stage = os.path.join(cls.root, "stage")
        sh("make", "-C", SOURCE, "install", f"BUILD={BUILD}", f"DESTDIR={cls.stage}", f"PREFIX={PREFIX}")
        cls.prefix = cls.stage + PREFIX
        cls.libdir = os.path.dirname(glob.glob(os.path.join(cls.prefix, "**", "libkeel.so.0"), recursive=True)[0])
        cls.pc_env = dict(CLEAN_ENV, PKG_CONFIG_PATH=os.path.join(cls.libdir, "pkgconfig"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def test_every_file_is_under_the_prefix_units_included(self):
        files = files_under(self.stage)
        outside = [f for f in files if not ("/" + f).startswith(PREFIX + "/")]
        self.assertEqual(outside, [], "make install PREFIX= puts every file under that prefix")
        with open(os.path.join(self.prefix, "share/man/man7/keel-plugin.7")) as f:
            self.assertIn("/share/doc/keel/examples/", f.read().replace("\\", ""), "keel-plugin(7) points to the installed examples")
        lib = os.path.relpath(self.libdir, self.prefix)
        self.assertIn(PREFIX[1:] + "/" + lib + "/keel/keel-agent.so", files, "keel's module goes to LIBDIR/keel")
        for f in ("bin/keel", "lib/systemd/system/keel.service", "lib/systemd/system/keel-token.socket",
                  "lib/systemd/catalog/keel.catalog", "share/man/man7/keel-plugin.7", "share/man/man3/keel.3",
                  "share/man/man3/keel-app.3", "share/man/man3/keel_app_run.3",
                  "share/doc/keel/examples/hello/hello.c", "share/doc/keel/examples/CMakeLists.txt"):
            self.assertIn(PREFIX[1:] + "/" + f, files)

    def test_every_exec_names_the_installed_keel(self):
        units = glob.glob(os.path.join(self.prefix, "lib/systemd/system/*"))
        self.assertGreaterEqual(len(units), 4)
        seen = set()
        for unit in units:
            with open(unit) as f:
                for line in f:
                    m = re.match(r"(Exec\w+)=[-@:+!]*(\S+)", line)
                    if m and os.path.basename(m.group(2)) == "keel":
                        self.assertEqual(m.group(2), PREFIX + "/bin/keel", f"{os.path.basename(unit)}: {line.strip()}")
                        seen.add(m.group(1))
        self.assertEqual(seen, {"ExecStart", "ExecReload"})

    def test_keel_pc_names_the_prefix(self):
        for pc in ("keel", "keel-static"):
            with self.subTest(pc):
                self.assertEqual(sh("pkg-config", "--variable=prefix", pc, env=self.pc_env).strip(), PREFIX)
                self.assertEqual(sh("pkg-config", "--variable=libdir", pc, env=self.pc_env).strip(),
                                 PREFIX + self.libdir[len(self.prefix):])

    def run_installed(self, keel, *args):
        p = subprocess.run([keel, *args], env=CLEAN_ENV, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, f"{keel} {' '.join(args)}: {p.stderr}")
        return p.stdout

    def test_the_installed_keel_runs_from_its_prefix_without_ld_library_path(self):
        keel = os.path.join(self.prefix, "bin/keel")
        needed, runpath = dynamic(keel)
        self.assertIn("libkeel.so.0", needed)
        self.assertNotIn("libcrypto.so.3", needed, "libcrypto is the module's, loaded by the commands that run it")
        lib = "$ORIGIN/../" + os.path.relpath(self.libdir, self.prefix)
        self.assertEqual(runpath, [lib, lib + "/keel"])
        module_needed, module_runpath = dynamic(os.path.join(self.libdir, "keel", "keel-agent.so"))
        self.assertIn("libcrypto.so.3", module_needed)
        self.assertIsNone(module_runpath, "the module finds libkeel.so.0 loaded by keel already")
        self.assertEqual(self.run_installed(keel, "--version"), "keel 0.1.0\n")
        self.assertIn("commands.serve", self.run_installed(keel, "plan"))
        # And from wherever the tree is moved: nothing in it names where it was installed.
        moved = os.path.join(self.root, "moved")
        shutil.copytree(self.prefix, moved, symlinks=True)
        try:
            self.assertIn("commands.serve", self.run_installed(os.path.join(moved, "bin/keel"), "plan", "--format", "dot"))
        finally:
            shutil.rmtree(moved)

    def test_without_its_module_keel_says_so(self):
        moved = os.path.join(self.root, "no-module")
        shutil.copytree(self.prefix, moved, symlinks=True)
        try:
            os.unlink(os.path.join(moved, os.path.relpath(self.libdir, self.prefix), "keel", "keel-agent.so"))
            keel = os.path.join(moved, "bin/keel")
            p = subprocess.run([keel, "plan"], env=CLEAN_ENV, capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 70, p.stderr)
            self.assertRegex(p.stderr, r"Failed to load the agent: no keel-agent\.so in [^\n]*/no-module/bin/\.\./\S+/keel, [^\n]*\(keel's "
                                       r"RUNPATH names where it was installed\)")
            self.assertEqual(self.run_installed(keel, "--version"), "keel 0.1.0\n", "--version needs no module")
        finally:
            shutil.rmtree(moved)

    def test_a_system_prefix_names_only_the_module_directory(self):
        stage = os.path.join(self.root, "usr-stage")
        sh("cmake", "--install", BUILD, "--prefix", "/usr", env=dict(CLEAN_ENV, DESTDIR=stage))
        libdir = os.path.dirname(glob.glob(os.path.join(stage, "usr/lib/**/keel/keel-agent.so"), recursive=True)[0])
        self.assertEqual(dynamic(os.path.join(stage, "usr/bin/keel"))[1], [libdir[len(stage):]],
                         "the loader searches /usr/lib already; the module's directory is keel's own, named as it is")
        with open(os.path.join(stage, "usr/lib/systemd/system/keel.service")) as f:
            self.assertIn("\nExecReload=/usr/bin/keel config --check\n", f.read())
        with open(os.path.join(glob.glob(os.path.join(stage, "usr/lib/**/pkgconfig/keel.pc"), recursive=True)[0])) as f:
            self.assertIn("prefix=/usr\n", f.read(), "keel.pc names the prefix of the install, not of the build tree")

    def test_the_build_tree_runpath_has_no_empty_entry(self):
        needed, runpath = dynamic(os.path.join(BUILD, "keel"))
        self.assertIsNotNone(runpath)
        self.assertNotIn("", runpath, "an empty entry is the current directory: a failed openat() per library, "
                                      "and a library planted there would be loaded")
        self.assertEqual([os.path.realpath(d) for d in runpath], [os.path.realpath(BUILD)])

    def test_the_installed_examples_link_libkeel_statically(self):
        examples = os.path.join(self.root, "examples")
        shutil.copytree(os.path.join(self.prefix, "share/doc/keel/examples"), examples)
        pc = f"pkg-config --define-variable=prefix={self.prefix}"
        os.makedirs(os.path.join(self.root, "pc-static"))
        sh("make", "-C", examples, "O=" + os.path.join(self.root, "pc-static"), "KEEL=keel-static", f"PKG_CONFIG={pc}",
           env=self.pc_env)
        cmake_out = os.path.join(self.root, "cmake-static")
        sh("cmake", "-S", examples, "-B", cmake_out, f"-DCMAKE_PREFIX_PATH={self.prefix}", "-DKEEL_EXAMPLES_STATIC=ON")
        sh("cmake", "--build", cmake_out)
        for out in ("pc-static", "cmake-static"):
            for example in ("hello", "qworker"):
                with self.subTest(out=out, example=example):
                    binary = os.path.join(self.root, out, example)
                    needed, _ = dynamic(binary)
                    self.assertFalse([n for n in needed if n.startswith("libkeel")], needed)
                    self.assertNotIn("libkeel", sh("ldd", binary))
                    self.assertEqual(self.run_installed(binary, "version"), f"{example} (keel 0.1.0)\n")

    def test_a_cxx_program_includes_every_header_and_links(self):
        headers = sorted(glob.glob(os.path.join(self.prefix, "include/keel/*.h")))
        self.assertEqual([os.path.basename(h) for h in headers],
                         sorted(os.path.basename(h) for h in glob.glob(os.path.join(SOURCE, "include/keel/*.h"))))
        functions = []
        for h in headers:
            with open(h) as f:
                text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
            functions += re.findall(r"KEEL_API\s+[^;(]*?\b(keel_\w+)\s*\(", text)
        self.assertGreater(len(functions), 100)
        # Every function's address: a declaration outside extern "C" names a C++-mangled symbol
        # that libkeel.so does not have, and the link fails on it.
        program = "".join(f"#include <keel/{os.path.basename(h)}>\n" for h in headers) + (
            "#include <cstdint>\n#include <cstdio>\n\n"
            "static const std::uintptr_t functions[] = {\n" +
            "".join(f"    reinterpret_cast<std::uintptr_t>(&{f}),\n" for f in sorted(set(functions))) +
            "};\n\nint main()\n{\n"
            "    for (std::uintptr_t f : functions)\n        if (!f)\n            return 1;\n"
            "    std::printf(\"%zu\\n\", sizeof(functions) / sizeof(functions[0]));\n    return 0;\n}\n")
        src, binary = os.path.join(self.root, "every-header.cpp"), os.path.join(self.root, "every-header")
        with open(src, "w") as f:
            f.write(program)
        flags = sh("pkg-config", "--cflags", "--libs", "keel", env=self.pc_env).split()
        for std in ("c++17", "c++20"):
            sh("g++", f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o", binary, src,
               *[f.replace(PREFIX, self.prefix) for f in flags], "-Wl,-rpath," + self.libdir)
            self.assertEqual(self.run_installed(binary), f"{len(set(functions))}\n")

    def test_the_installed_headers_cite_nothing_that_is_not_installed(self):
        # A header's comments are contracts: they cite no source file and no document the install
        # does not hold.
        for h in sorted(glob.glob(os.path.join(self.prefix, "include/keel/*.h"))):
            with open(h) as f:
                comments = " ".join(re.findall(r"/\*.*?\*/", f.read(), flags=re.S))
            with self.subTest(os.path.basename(h)):
                self.assertEqual(re.findall(r"DESIGN|§|docs/|decisions/|\b(?:core|services|observers)/[\w/.-]+", comments), [])

    def test_make_install_neither_installs_packages_nor_builds_the_tests(self):
        plan = sh("make", "-n", "-C", SOURCE, "install", f"BUILD={BUILD}", f"PREFIX={PREFIX}")
        for word in ("apt-get", "dpkg", "npm", "ctest", "deps"):
            self.assertNotIn(word, plan)
        self.assertIn("--target installed", plan)


if __name__ == "__main__":
    unittest.main()
