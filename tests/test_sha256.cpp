#include <gtest/gtest.h>

#include <string>

#include "clipes/util/atomic_file.h"
#include "clipes/util/error.h"
#include "clipes/util/sha256.h"
#include "test_support.h"

using namespace clipes;

// FIPS 180-2 / NIST test vectors.
TEST(Sha256, KnownVectorsInMemory) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, FilesAreHashedInChunks) {
  const std::string dir = test::make_temp_dir("sha256");
  write_file_atomic(dir + "/abc.txt", "abc");
  EXPECT_EQ(sha256_file(dir + "/abc.txt"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  write_file_atomic(dir + "/empty", "");
  EXPECT_EQ(sha256_file(dir + "/empty"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // One million 'a' spans several 1 MiB read chunks' worth of boundaries.
  write_file_atomic(dir + "/million-a", std::string(1000000, 'a'));
  EXPECT_EQ(sha256_file(dir + "/million-a"), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  write_file_atomic(dir + "/3mib", std::string(3 * 1048576 + 7, 'x'));
  EXPECT_EQ(sha256_file(dir + "/3mib"), sha256_hex(std::string(3 * 1048576 + 7, 'x')));
}

TEST(Sha256, MatchesThePublishedHashOfTheVocabulary) {
  EXPECT_EQ(sha256_file(test::vocab_path()), "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a");
}

TEST(Sha256, MissingFileIsAnErrorNamingIt) {
  try {
    sha256_file("/nonexistent/ViT-B-16.pt");
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ViT-B-16.pt"), std::string::npos);
  }
}
