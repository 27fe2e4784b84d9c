#!/usr/bin/perl
# SpamAssassin 4.0's Bayes alone, trained and tested on one fold (used by
# bench/bayes-peers.sh). Loads only the Bayes plugin and one eval rule, so the
# score is the Bayes probability and nothing else; no network tests.
#
#   sa-bayes.pl WORKDIR TRAIN_LIST TEST_LIST > scores.tsv
#
# TRAIN_LIST and TEST_LIST hold `label<TAB>path` lines. Output:
# `path<TAB>label<TAB>probability` (0.5 when Bayes gives no answer).
use strict;
use warnings;
use Mail::SpamAssassin;

my ($work, $train, $test) = @ARGV;
mkdir $work;
my $rules = "$work/rules";
mkdir $rules;
open(my $cf, '>', "$rules/bayes.cf") or die;
print $cf <<"EOF";
loadplugin Mail::SpamAssassin::Plugin::Check
loadplugin Mail::SpamAssassin::Plugin::Bayes
include /usr/share/spamassassin/20_aux_tlds.cf
use_bayes 1
bayes_auto_learn 0
bayes_path $work/bayes
bayes_file_mode 0600
use_learner 1
body BAYES_PROB eval:check_bayes('0.00', '1.01')
score BAYES_PROB 0.001
EOF
close $cf;

my $sa = Mail::SpamAssassin->new({
    rules_filename      => $rules,
    site_rules_filename => $rules,
    userprefs_filename  => "$work/user_prefs",
    userstate_dir       => $work,
    local_tests_only    => 1,
    dont_copy_prefs     => 1,
});
$sa->init(1);

sub slurp { local $/; open(my $f, '<', $_[0]) or die "$_[0]: $!"; my $s = <$f>; close $f; $s }

open(my $tl, '<', $train) or die;
my $n = 0;
while (my $line = <$tl>) {
    chomp $line;
    my ($label, $path) = split /\t/, $line, 2;
    my $mail = $sa->parse(slurp($path));
    $sa->learn($mail, undef, $label eq 'spam' ? 1 : 0, 0);
    $mail->finish();
    $n++;
}
close $tl;
$sa->finish_learner();
$sa->init_learner({});
print STDERR "sa-bayes: learned $n messages\n";

open(my $te, '<', $test) or die;
while (my $line = <$te>) {
    chomp $line;
    my ($label, $path) = split /\t/, $line, 2;
    my $mail = $sa->parse(slurp($path));
    my $status = $sa->check($mail);
    # The unrounded probability (the BAYES tag rounds to 4 decimals,
    # which would make ties of most messages).
    my $p = $status->{bayes_score};
    $p = $status->get_tag('BAYES') if !defined $p;
    $p = 0.5 if !defined $p || $p eq '';
    print "$path\t$label\t$p\n";
    $status->finish();
    $mail->finish();
}
close $te;
