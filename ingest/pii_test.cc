#include "ingest/pii.h"

#include "gtest/gtest.h"
