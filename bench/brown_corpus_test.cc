// DetokenizeBrownSentence on hand-written tagged sentences in the corpus's
// format; the expected plain text is written out by hand.
#include "bench/brown_corpus.h"

#include "gtest/gtest.h"

namespace streamlm {
namespace {

TEST(BrownCorpusTest, DropsTagsAndAttachesClosingPunctuation) {
  EXPECT_EQ(DetokenizeBrownSentence("The/at jury/nn said/vbd ./."), "The jury said.");
  EXPECT_EQ(DetokenizeBrownSentence("Yes/rb ,/, he/pps came/vbd ;/. why/wrb ?/."),
            "Yes, he came; why?");
}

TEST(BrownCorpusTest, QuotesBecomeStraightDoubleQuotes) {
  EXPECT_EQ(DetokenizeBrownSentence("He/pps said/vbd ``/`` Go/vb ''/'' ./."),
            "He said \"Go\".");
  EXPECT_EQ(DetokenizeBrownSentence("``/`` Now/rb !/. ''/''"), "\"Now!\"");
}

TEST(BrownCorpusTest, ParenthesesAndContractions) {
  EXPECT_EQ(DetokenizeBrownSentence("(/( see/vb page/nn 3/cd )/) ,/, then/rb"),
            "(see page 3), then");
  EXPECT_EQ(DetokenizeBrownSentence("do/do n't/* go/vb"), "don't go");
  EXPECT_EQ(DetokenizeBrownSentence("the/at boy/nn 's/$ dog/nn"), "the boy's dog");
}

TEST(BrownCorpusTest, WhitespaceAndSlashesInWords) {
  // Tabs and runs of spaces separate tokens; only the last slash starts the tag.
  EXPECT_EQ(DetokenizeBrownSentence("\ta/at  \t1/2/cd inch/nn "), "a 1/2 inch");
  EXPECT_EQ(DetokenizeBrownSentence("untagged words"), "untagged words");
  EXPECT_EQ(DetokenizeBrownSentence(""), "");
}

}  // namespace
}  // namespace streamlm
