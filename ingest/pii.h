// Stage 6 of cleaning: PII redaction. Finds e-mail addresses, phone numbers,
// IPv4 and IPv6 addresses, payment-card numbers (Luhn-checked), IBANs
// (mod-97 checked), API keys and private-key blocks, and replaces each with
// a typed placeholder: <EMAIL>, <PHONE>, <IP_ADDRESS>, <CREDIT_CARD>,
// <IBAN>, <API_KEY>, <PRIVATE_KEY>.
//
// Thread-safety: a PiiRedactor is immutable after construction (compiled
// PCRE2 patterns); Redact() may be called from many threads at once.
#ifndef STREAMLM_INGEST_PII_H_
#define STREAMLM_INGEST_PII_H_

#include <memory>
#include <string>

#include "ingest/clean_options.h"

namespace streamlm {

struct PiiCounts {
  int email = 0;
  int phone = 0;
  int ip = 0;
  int credit_card = 0;
  int iban = 0;
  int api_key = 0;
  int private_key = 0;
  int total() const {
    return email + phone + ip + credit_card + iban + api_key + private_key;
  }
  // fn(kind, count) for every kind, by the names metrics and `streamlm
  // clean` use: email, phone, ip_address, credit_card, iban, api_key,
  // private_key.
  template <typename Fn>
  void ForEach(Fn fn) const {
    fn("email", email);
    fn("phone", phone);
    fn("ip_address", ip);
    fn("credit_card", credit_card);
    fn("iban", iban);
    fn("api_key", api_key);
    fn("private_key", private_key);
  }
  PiiCounts& operator+=(const PiiCounts& o) {
    email += o.email;
    phone += o.phone;
    ip += o.ip;
    credit_card += o.credit_card;
    iban += o.iban;
    api_key += o.api_key;
    private_key += o.private_key;
    return *this;
  }
};

class PiiRedactor {
 public:
  explicit PiiRedactor(const PiiOptions& options);
  ~PiiRedactor();
  PiiRedactor(const PiiRedactor&) = delete;
  PiiRedactor& operator=(const PiiRedactor&) = delete;

  // Replaces every hit of the enabled kinds in `text` (valid UTF-8) by its
  // placeholder and returns the counts. Output is valid UTF-8.
  PiiCounts Redact(std::string& text) const;

 private:
  struct Impl;
  PiiOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace streamlm

#endif  // STREAMLM_INGEST_PII_H_
