# Smallest device test: reads its settings from devcfg and reports PASS.
import devcfg

print("HOST", devcfg.HOST)
print("PASS")
