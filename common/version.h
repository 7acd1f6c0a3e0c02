/* version: the build's version string (git describe), set in one place. */
#ifndef BATON_VERSION_H
#define BATON_VERSION_H

extern const char baton_version[];

#endif
