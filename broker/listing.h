/* SPDX-License-Identifier: MIT */
/*
 * Human-readable tables of the broker's answers, shared by the fronts: the
 * console list and who is attached.  Every string from the broker is
 * escaped again before it is printed.  eol is "\n" or "\r\n".
 */
#pragma once

#include <jansson.h>
#include <stdio.h>

void listing_print_consoles(FILE *f, json_t *consoles, json_t *errors, const char *eol);
void listing_print_who(FILE *f, json_t *who, const char *eol);
