# SPDX-License-Identifier: MIT
# cmake -DIN=FILE -DOUT=FILE -P strip-sourcemap.cmake: copy IN to OUT without its
# "sourceMappingURL=" comment (the .map files are not served).
file(READ "${IN}" text)
string(REGEX REPLACE "\n?(//|/\\*)# sourceMappingURL=[^\n]*" "" text "${text}")
file(WRITE "${OUT}" "${text}")
