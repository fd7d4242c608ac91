#include "ingest/quality.h"

#include "gtest/gtest.h"
