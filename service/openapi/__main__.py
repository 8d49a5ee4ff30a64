"""``python -m service.openapi``: write service/openapi.json from the code."""

from service.openapi import DOCUMENT, write

write()
print(f"wrote {DOCUMENT}")
