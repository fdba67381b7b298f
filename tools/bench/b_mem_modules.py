# Heap each module of the library takes once loaded (tools/bench/b_mem.py --anatomy runs
# it): everything is imported once, then each module is imported again on its own with
# its dependencies already there; the heap it adds is its code (when loaded from .mpy),
# its functions, classes, names and module-level objects.
# Arguments: mods=a,b,c [rom=IMAGE]   Prints "R modheap.<module> <bytes>".
import gc
import sys

a = dict(x.split("=", 1) for x in sys.argv[1:])
if "rom" in a:
    import vfs

    with open(a["rom"], "rb") as f:
        _img = f.read()
    vfs.mount(vfs.VfsRom(memoryview(_img)), "/rom")
    sys.path.insert(0, "/rom")
mods = a["mods"].split(",")
for m in mods:
    __import__(m)
old = []  # the first copies stay referenced: the collector must not free them meanwhile
for m in mods:
    if m == "mqttsession":
        continue  # the package: re-running its __init__ would rebind its names
    old.append(sys.modules.pop(m))
    gc.collect()
    h = gc.mem_alloc()
    __import__(m)
    gc.collect()
    print("R modheap." + m, gc.mem_alloc() - h)
print("DONE")
